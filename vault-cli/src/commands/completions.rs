//! `breakglass completions` and `breakglass man`: shell completion scripts and man pages, made
//! from the same command-line definition (examples included) that parses the arguments.

use anyhow::{Context, Result};

use crate::cli::{CompletionsArgs, ManArgs};

/// `breakglass completions SHELL`: the script on standard output.
pub fn completions(args: &CompletionsArgs) -> Result<()> {
    let mut command = crate::examples::command();
    clap_complete::generate(
        args.shell,
        &mut command,
        "breakglass",
        &mut std::io::stdout(),
    );
    Ok(())
}

/// `breakglass man --out DIR`: breakglass.1 and breakglass-<command>.1 for every command.
pub fn man(args: &ManArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    clap_mangen::generate_to(crate::examples::command(), &args.out)
        .with_context(|| format!("writing the man pages into {}", args.out.display()))?;
    let mut pages: Vec<_> = std::fs::read_dir(&args.out)?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .filter(|n| {
            n.to_string_lossy().starts_with("breakglass") && n.to_string_lossy().ends_with(".1")
        })
        .collect();
    pages.sort();
    println!(
        "{} man pages written to {} (read one with: man -l {}/breakglass.1)",
        pages.len(),
        args.out.display(),
        args.out.display()
    );
    Ok(())
}
