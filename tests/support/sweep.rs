//! The vault the fault, crash, hygiene and concurrency sweeps start from (five custodians,
//! three needed, a recovery set of four, two sealed credentials whose payloads are canaries),
//! and what every sweep checks after a fault: nothing half-written, the audit log intact,
//! every credential opening with the same quorum to the same bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{Env, stderr};

/// The custodians, in the order their shares are used.
pub const CUSTODIANS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

/// The sealed credentials and their payloads (canaries a hygiene scan looks for).
pub const CREDENTIALS: [(&str, &[u8]); 2] = [
    ("db-root", b"canary-payload-db-7f3a9c1e5b"),
    ("api", b"canary-payload-api-2d8e6b4f0a"),
];

impl Env {
    /// `init --dev-softhsm`: 3 of the 5 custodians, a recovery set of 4, shares in `shares/`;
    /// then the [`CREDENTIALS`] sealed.
    pub fn sweep_vault(&self) {
        self.init_vault(&CUSTODIANS, 3, &["--recovery-threshold", "4"]);
        for (name, payload) in CREDENTIALS {
            let output = self.seal_payload(name, payload, false);
            assert!(output.status.success(), "{}", stderr(&output));
        }
    }

    /// `seal NAME --kind secret --from-file` with `payload` (the file removed afterwards).
    pub fn seal_payload(&self, name: &str, payload: &[u8], replace: bool) -> Output {
        self.seal_payload_with(name, payload, replace, &[])
    }

    /// [`Env::seal_payload`] with extra environment.
    pub fn seal_payload_with(
        &self,
        name: &str,
        payload: &[u8],
        replace: bool,
        env: &[(&str, &str)],
    ) -> Output {
        let file = self.path(&format!("{name}.payload"));
        let mut command = self.seal_command(name, payload, &file);
        if replace {
            command.arg("--replace");
        }
        let output = command.envs(env.iter().copied()).output().unwrap();
        std::fs::remove_file(&file).unwrap();
        output
    }

    /// `seal NAME --kind secret --from-file FILE`, with `payload` written to `file` first.
    pub fn seal_command(&self, name: &str, payload: &[u8], file: &Path) -> Command {
        std::fs::write(file, payload).unwrap();
        self.command(&[
            "seal",
            name,
            "--kind",
            "secret",
            "--from-file",
            file.to_str().unwrap(),
        ])
    }

    /// `args` followed by `--share-file` for the share files `shares` (relative to the test
    /// directory, e.g. `shares/alice.share`).
    pub fn with_share_files(&self, args: &[&str], shares: &[String]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        for share in shares {
            all.push("--share-file".into());
            all.push(self.path(share).display().to_string());
        }
        all
    }

    /// The share files of the first three custodians in `dir`.
    pub fn quorum_in(&self, dir: &str) -> Vec<String> {
        CUSTODIANS[..3]
            .iter()
            .map(|c| format!("{dir}/{c}.share"))
            .collect()
    }

    /// `unseal NAME` with `shares`, the secret written to a new file; the output and the file.
    pub fn unseal_with(
        &self,
        name: &str,
        shares: &[String],
        env: &[(&str, &str)],
    ) -> (Output, PathBuf) {
        let out = self.path(&format!("out-{name}-{}", unique()));
        let mut args = self.with_share_files(&["unseal", name], shares);
        args.push("--output".into());
        args.push(format!("file:{}", out.display()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        (self.run_with(&args, env), out)
    }

    /// Every credential opens with `shares` to its payload (`payloads` by name).
    pub fn assert_every_credential_opens(
        &self,
        shares: &[String],
        payloads: &BTreeMap<String, Vec<u8>>,
    ) {
        for (name, payload) in payloads {
            let (output, file) = self.unseal_with(name, shares, &[]);
            assert!(
                output.status.success(),
                "unseal {name}: {}",
                stderr(&output)
            );
            assert_eq!(&std::fs::read(&file).unwrap(), payload, "{name}");
            std::fs::remove_file(file).unwrap();
        }
    }

    /// `audit verify` passes and reports no torn tail, and an entry records the manifest.
    pub fn assert_audit_intact(&self) {
        let output = self.run(&["audit", "verify"]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(!stderr(&output).contains("torn"), "{}", stderr(&output));
        assert!(
            !stderr(&output).contains("no audit entry records it"),
            "{}",
            stderr(&output)
        );
    }

    /// Every file of the vault (the lock file and the development token left out), by path
    /// relative to the vault.
    pub fn vault_files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        collect(&self.vault(), &self.vault(), &mut files);
        files.remove(Path::new("vault.lock"));
        files
    }

    /// No temporary file (`.NAME.tmp.PID`) or partial file is left in the vault.
    pub fn assert_no_temporary_files(&self) {
        for path in self.vault_files().keys() {
            let name = path.file_name().unwrap().to_string_lossy();
            assert!(!name.contains(".tmp."), "left behind: {}", path.display());
        }
    }

    /// Replaces the vault directory and the configuration (the pinned fingerprint) with the
    /// copies [`Env::save_vault`] made in `from`.
    pub fn restore_vault(&self, from: &Path) {
        for dir in ["vault", "config"] {
            let _ = std::fs::remove_dir_all(self.path(dir));
            copy_dir(&from.join(dir), &self.path(dir));
        }
    }

    /// Copies the vault directory and the configuration into `to` (a new directory).
    pub fn save_vault(&self, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for dir in ["vault", "config"] {
            copy_dir(&self.path(dir), &to.join(dir));
        }
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let relative = path.strip_prefix(root).unwrap().to_path_buf();
        if relative.starts_with("softhsm") {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            files.insert(relative, std::fs::read(&path).unwrap());
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// The payloads of [`CREDENTIALS`], by name.
pub fn payloads() -> BTreeMap<String, Vec<u8>> {
    CREDENTIALS
        .iter()
        .map(|(n, p)| (n.to_string(), p.to_vec()))
        .collect()
}

/// IAM user `breakglass` on a local endpoint (moto, request authentication on), allowed to
/// assume role `emergency` and to manage its own keys and virtual MFA devices, as `rotate`
/// (with `--mfa`) and `assume` need; its key is sealed in a vault as [`AWS_CREDENTIAL`].
pub struct AwsUser {
    pub aws: hsm_testing::aws::LocalAws,
    role_arn: String,
}

/// The AWS credential of [`AwsUser`].
pub const AWS_CREDENTIAL: &str = "prod";

impl AwsUser {
    pub fn start() -> AwsUser {
        let aws = hsm_testing::aws::LocalAws::start();
        aws.create_user_with_key("breakglass");
        aws.put_user_policy(
            "breakglass",
            "breakglass",
            &serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity",
                    "sts:GetCallerIdentity", "iam:CreateAccessKey", "iam:UpdateAccessKey",
                    "iam:DeleteAccessKey", "iam:ListAccessKeys", "iam:CreateVirtualMFADevice",
                    "iam:EnableMFADevice", "iam:DeactivateMFADevice",
                    "iam:DeleteVirtualMFADevice", "iam:ListMFADevices"],
                "Resource": "*"}]}),
        );
        let role_arn = aws.create_role("emergency", "arn:aws:iam::123456789012:user/breakglass");
        aws.enable_auth();
        AwsUser { aws, role_arn }
    }

    /// Deletes every key of the user, makes a new one and seals it in `env`'s vault as
    /// [`AWS_CREDENTIAL`] (replacing what was sealed): afterwards IAM and the vault agree on
    /// one key, its id.
    pub fn fresh_key(&self, env: &Env) -> String {
        self.fresh_key_sealed_with(env, None)
    }

    /// [`AwsUser::fresh_key`], and the user's MFA devices too: every one is deleted, a new
    /// virtual device (named as `rotate --mfa` names its own) is made and enabled, and its seed
    /// is sealed with the key. Returns the key id and the device's serial.
    pub fn fresh_key_with_mfa(&self, env: &Env) -> (String, String) {
        let device = self.aws.boto(
            "for d in iam.list_mfa_devices(UserName='breakglass')['MFADevices']:\n    \
             iam.deactivate_mfa_device(UserName='breakglass', SerialNumber=d['SerialNumber'])\n    \
             iam.delete_virtual_mfa_device(SerialNumber=d['SerialNumber'])\n\
             d = iam.create_virtual_mfa_device(VirtualMFADeviceName=args['name'])['VirtualMFADevice']\n\
             iam.enable_mfa_device(UserName='breakglass', SerialNumber=d['SerialNumber'], \
             AuthenticationCode1='123456', AuthenticationCode2='654321')\n\
             result = {'serial': d['SerialNumber'], 'seed': d['Base32StringSeed'].decode()}",
            serde_json::json!({"name": format!("breakglass-breakglass-{:08x}", unique() as u32)}),
        );
        let serial = device["serial"].as_str().unwrap().to_owned();
        let seed = device["seed"].as_str().unwrap();
        let id = self.fresh_key_sealed_with(env, Some((&serial, seed)));
        (id, serial)
    }

    fn fresh_key_sealed_with(&self, env: &Env, mfa: Option<(&str, &str)>) -> String {
        let key = self.aws.boto(
            "for k in iam.list_access_keys(UserName='breakglass')['AccessKeyMetadata']:\n    \
             iam.delete_access_key(UserName='breakglass', AccessKeyId=k['AccessKeyId'])\n\
             result = iam.create_access_key(UserName='breakglass')['AccessKey']",
            serde_json::json!({}),
        );
        let input = serde_json::json!({"AccessKey": {"UserName": "breakglass",
            "AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"],
            "Status": "Active"}});
        let file = env.path("aws-key.json");
        std::fs::write(&file, input.to_string()).unwrap();
        let replace = env
            .vault()
            .join(format!("credentials/{AWS_CREDENTIAL}.json"))
            .exists();
        let mut args = vec![
            "seal",
            AWS_CREDENTIAL,
            "--kind",
            "aws",
            "--from-file",
            file.to_str().unwrap(),
            "--role-arn",
            &self.role_arn,
            "--region",
            hsm_testing::aws::REGION,
            "--duration",
            "900",
        ];
        if replace {
            args.push("--replace");
        }
        let seed_file = env.path("mfa-seed.txt");
        if let Some((serial, seed)) = mfa {
            std::fs::write(&seed_file, seed).unwrap();
            args.extend([
                "--mfa-serial",
                serial,
                "--mfa-seed-file",
                seed_file.to_str().unwrap(),
            ]);
        }
        env.ok(&args);
        std::fs::remove_file(&file).unwrap();
        let _ = std::fs::remove_file(&seed_file);
        key["AccessKeyId"].as_str().unwrap().to_owned()
    }

    /// The serials of the user's MFA devices in IAM, sorted.
    pub fn mfa_devices(&self) -> Vec<String> {
        let devices = self.aws.boto(
            "result = sorted(d['SerialNumber'] for d in \
             iam.list_mfa_devices(UserName='breakglass')['MFADevices'])",
            serde_json::json!({}),
        );
        serde_json::from_value(devices).unwrap()
    }

    /// The ids of the user's keys in IAM, sorted.
    pub fn iam_keys(&self) -> Vec<String> {
        let keys = self.aws.boto(
            "result = sorted(k['AccessKeyId'] for k in \
             iam.list_access_keys(UserName='breakglass')['AccessKeyMetadata'])",
            serde_json::json!({}),
        );
        serde_json::from_value(keys).unwrap()
    }
}

impl Env {
    /// The metadata field `field` of the sealed [`AWS_CREDENTIAL`] (`list --json`), if any.
    pub fn sealed_aws(&self, field: &str) -> Option<String> {
        let list: serde_json::Value = serde_json::from_str(&self.ok(&["list", "--json"])).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == AWS_CREDENTIAL)
            .and_then(|c| c["metadata"][field].as_str())
            .map(str::to_owned)
    }
}

/// The sweep vault with the key of an [`AwsUser`] sealed besides, as [`AWS_CREDENTIAL`].
pub struct AwsSweep {
    pub env: Env,
    pub user: AwsUser,
}

impl AwsSweep {
    pub fn new() -> AwsSweep {
        let user = AwsUser::start();
        let mut env = Env::new();
        env.vars = user.aws.client_env();
        env.sweep_vault();
        user.fresh_key(&env);
        AwsSweep { env, user }
    }

    /// See [`AwsUser::fresh_key`].
    pub fn fresh_key(&self) -> String {
        self.user.fresh_key(&self.env)
    }

    /// See [`AwsUser::fresh_key_with_mfa`].
    pub fn fresh_key_with_mfa(&self) -> (String, String) {
        self.user.fresh_key_with_mfa(&self.env)
    }

    /// See [`AwsUser::mfa_devices`].
    pub fn mfa_devices(&self) -> Vec<String> {
        self.user.mfa_devices()
    }

    /// The MFA device the vault has sealed with [`AWS_CREDENTIAL`], if any.
    pub fn sealed_mfa_serial(&self) -> Option<String> {
        self.env.sealed_aws("mfa_serial")
    }

    /// `assume` of [`AWS_CREDENTIAL`] with `shares` and the extra environment `fault`; one that
    /// fails must have printed no session.
    pub fn assume(&self, shares: &[String], fault: &[(&str, &str)]) -> Output {
        let args = self
            .env
            .with_share_files(&["assume", AWS_CREDENTIAL, "--format", "json"], shares);
        let output = self.env.run_with(&super::as_strs(&args), fault);
        if !output.status.success() {
            assert!(output.stdout.is_empty(), "a session released unrecorded");
        }
        output
    }

    /// See [`AwsUser::iam_keys`].
    pub fn iam_keys(&self) -> Vec<String> {
        self.user.iam_keys()
    }

    /// The access key id the vault has sealed as [`AWS_CREDENTIAL`].
    pub fn sealed_key_id(&self) -> String {
        self.env
            .sealed_aws("access_key_id")
            .unwrap_or_else(|| panic!("no {AWS_CREDENTIAL} sealed"))
    }

    /// Nothing is lost: the sealed key is one IAM has, `drill --aws` with `shares` opens every
    /// credential and finds the sealed key valid in AWS, and the other credentials open to
    /// their payloads. Returns the sealed key id.
    pub fn assert_sealed_key_works(&self, shares: &[String]) -> String {
        self.assert_sealed_key_works_drilled(shares).0
    }

    /// [`AwsSweep::assert_sealed_key_works`]; the sealed key id and what the drill said of
    /// [`AWS_CREDENTIAL`].
    pub fn assert_sealed_key_works_drilled(&self, shares: &[String]) -> (String, String) {
        let sealed = self.sealed_key_id();
        let keys = self.iam_keys();
        assert!(
            keys.contains(&sealed),
            "the sealed key {sealed} is not in IAM ({keys:?}): lost"
        );
        let args = self
            .env
            .with_share_files(&["drill", "--aws", "--json"], shares);
        let drill = self.env.run(&super::as_strs(&args));
        assert!(drill.status.success(), "drill --aws: {}", stderr(&drill));
        let report: serde_json::Value = serde_json::from_slice(&drill.stdout).unwrap();
        let outcome = report["credentials"][AWS_CREDENTIAL]
            .as_str()
            .unwrap_or_default();
        assert!(
            outcome.contains(&format!("key {sealed} valid in AWS")),
            "{report}"
        );
        self.env.assert_every_credential_opens(shares, &payloads());
        (sealed, outcome.to_owned())
    }
}
