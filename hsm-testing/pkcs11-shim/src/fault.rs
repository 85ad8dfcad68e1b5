//! Which calls fail and the record of every call: the fault plan (`BREAKGLASS_SHIM_FAIL`), the
//! per-function call count it is matched against, and the call log (`BREAKGLASS_SHIM_LOG`).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use cryptoki_sys::CK_RV;

use crate::return_value;

/// One planned failure: the `occurrence`-th call (from 1, in this process) of `function`
/// returns `rv` without reaching the real module.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fault {
    function: String,
    occurrence: u64,
    rv: CK_RV,
}

/// The fault plan, the call counts and the log of one process.
pub(crate) struct Calls {
    faults: Vec<Fault>,
    log: Option<PathBuf>,
    counts: Mutex<HashMap<&'static str, u64>>,
}

impl Calls {
    /// Reads `BREAKGLASS_SHIM_FAIL` and `BREAKGLASS_SHIM_LOG`; `functions` are the names a plan
    /// may use (every function of the list).
    pub(crate) fn from_env(functions: &[&str]) -> Result<Calls, String> {
        let faults = match std::env::var("BREAKGLASS_SHIM_FAIL") {
            Ok(plan) => parse_plan(&plan, functions)?,
            Err(std::env::VarError::NotPresent) => Vec::new(),
            Err(e) => return Err(format!("BREAKGLASS_SHIM_FAIL: {e}")),
        };
        Ok(Calls {
            faults,
            log: std::env::var_os("BREAKGLASS_SHIM_LOG").map(PathBuf::from),
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a call of `function`: returns its occurrence and the planned failure, if any.
    pub(crate) fn next(&self, function: &'static str) -> (u64, Option<CK_RV>) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(function).or_insert(0);
        *count += 1;
        let occurrence = *count;
        let fault = self
            .faults
            .iter()
            .find(|f| f.function == function && f.occurrence == occurrence)
            .map(|f| f.rv);
        (occurrence, fault)
    }

    /// Appends `function occurrence CKR_... [injected]` to the log, if there is one.
    ///
    /// # Panics
    /// When the log cannot be written: a test relying on it must not see a partial list (the
    /// panic aborts the process, as it cannot unwind into the caller's C frames).
    pub(crate) fn log(&self, function: &str, occurrence: u64, rv: CK_RV, injected: bool) {
        let Some(path) = &self.log else { return };
        let line = format!(
            "{function} {occurrence} {}{}\n",
            return_value::name(rv),
            if injected { " injected" } else { "" }
        );
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| file.write_all(line.as_bytes()))
            .unwrap_or_else(|e| panic!("BREAKGLASS_SHIM_LOG={}: {e}", path.display()));
    }
}

/// `FUNCTION:OCCURRENCE:RV[,FUNCTION:OCCURRENCE:RV...]`, e.g. `C_DeriveKey:2:CKR_DEVICE_REMOVED`.
fn parse_plan(plan: &str, functions: &[&str]) -> Result<Vec<Fault>, String> {
    plan.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let bad = |why: &str| {
                format!(
                    "BREAKGLASS_SHIM_FAIL item {item:?}: {why} \
                     (expected FUNCTION:OCCURRENCE:RV, e.g. C_DeriveKey:2:CKR_DEVICE_REMOVED)"
                )
            };
            let mut parts = item.trim().split(':');
            let (Some(function), Some(occurrence), Some(rv), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("not three fields"));
            };
            if !functions.contains(&function) {
                return Err(bad("no PKCS#11 2.40 function has that name"));
            }
            let occurrence = occurrence
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("the occurrence counts from 1"))?;
            let rv = return_value::parse(rv).ok_or_else(|| bad("unknown return value"))?;
            Ok(Fault {
                function: function.to_owned(),
                occurrence,
                rv,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki_sys::{CKR_DEVICE_REMOVED, CKR_PIN_LOCKED};

    const FUNCTIONS: &[&str] = &["C_DeriveKey", "C_Login"];

    #[test]
    fn a_plan_names_function_occurrence_and_return_value() {
        assert_eq!(
            parse_plan(
                "C_DeriveKey:2:CKR_DEVICE_REMOVED, C_Login:1:CKR_PIN_LOCKED",
                FUNCTIONS
            ),
            Ok(vec![
                Fault {
                    function: "C_DeriveKey".into(),
                    occurrence: 2,
                    rv: CKR_DEVICE_REMOVED
                },
                Fault {
                    function: "C_Login".into(),
                    occurrence: 1,
                    rv: CKR_PIN_LOCKED
                },
            ])
        );
    }

    #[test]
    fn a_mistyped_plan_is_refused_naming_the_item() {
        for plan in [
            "C_Derive:1:CKR_DEVICE_REMOVED",
            "C_DeriveKey:0:CKR_DEVICE_REMOVED",
            "C_DeriveKey:1:CKR_DEVICE_REMOVD",
            "C_DeriveKey:1",
        ] {
            let error = parse_plan(plan, FUNCTIONS).unwrap_err();
            assert!(error.contains(plan), "{error}");
        }
    }

    #[test]
    fn the_planned_occurrence_fails_and_no_other() {
        let calls = Calls {
            faults: parse_plan("C_Login:2:CKR_PIN_LOCKED", FUNCTIONS).unwrap(),
            log: None,
            counts: Mutex::new(HashMap::new()),
        };
        assert_eq!(calls.next("C_Login"), (1, None));
        assert_eq!(calls.next("C_DeriveKey"), (1, None));
        assert_eq!(calls.next("C_Login"), (2, Some(CKR_PIN_LOCKED)));
        assert_eq!(calls.next("C_Login"), (3, None));
    }
}
