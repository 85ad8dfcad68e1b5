//! A local AWS endpoint for tests: `moto_server` from the repo's virtualenv on a free loopback
//! port, reached by the real AWS SDK and the AWS CLI through the standard `AWS_ENDPOINT_URL`.
//!
//! Known limits of the endpoint (it is a test double, not AWS): it authenticates nothing until
//! [`LocalAws::enable_auth`]; even then it ignores MFA, access-key status in some paths and session
//! policies; its auth-layer error bodies are not parsable by the Rust SDK (`code()` is `None`).

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::venv_program;

/// The region every test uses.
pub const REGION: &str = "us-east-1";

/// How long the server may take to answer after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Test credentials minted by the local endpoint (they open nothing real).
pub struct AccessKey {
    /// The access key id (`AKIA...`).
    pub id: String,
    /// The secret access key.
    pub secret: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// A running `moto_server`, stopped on drop (also when the test panics; and, through the parent
/// death signal, when the test process is killed).
pub struct LocalAws {
    child: Child,
    endpoint: String,
    admin: AccessKey,
    _log_dir: tempfile::TempDir,
}

impl LocalAws {
    /// Starts the server on a free 127.0.0.1 port, waits until it answers, and creates an
    /// `admin` user (allowed everything) whose key the fixture uses for its own setup calls.
    ///
    /// # Panics
    /// When `moto_server` is missing (run `scripts/setup`) or does not answer in time.
    pub fn start() -> LocalAws {
        let program = venv_program("moto_server");
        let port = free_port();
        let log_dir = tempfile::tempdir().expect("temp dir for the moto_server log");
        let log_path = log_dir.path().join("moto.log");
        let log = std::fs::File::create(&log_path).expect("moto_server log file");
        let mut command = pdeathsig_command(&program);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (run scripts/setup)",
                program.display()
            )
        });
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut server = LocalAws {
            child,
            endpoint,
            admin: AccessKey {
                id: String::new(),
                secret: String::new(),
            },
            _log_dir: log_dir,
        };
        server.wait_ready(&log_path);
        server.admin = server.create_admin();
        server
    }

    /// The endpoint URL (`http://127.0.0.1:PORT`), for `AWS_ENDPOINT_URL`.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint
    }

    /// The environment a client process needs to reach this endpoint and nothing else: the
    /// endpoint, the region, no instance metadata, no shared config or credentials files.
    pub fn client_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// The environment of an administrator with full rights on this endpoint (for commands that
    /// run with an administrator's own credentials, like revoking sessions after an incident).
    pub fn admin_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".to_owned(), self.admin.id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                self.admin.secret.clone(),
            ),
        ]
    }

    /// Runs a Python snippet with `boto3` clients pointed at this endpoint under the admin key.
    /// The snippet sees `iam`, `sts` (boto3 clients) and `args` (the JSON given), and must
    /// assign its answer to `result`; the answer comes back as JSON.
    ///
    /// # Panics
    /// When the snippet fails; the panic carries Python's error output.
    pub fn boto(&self, snippet: &str, args: serde_json::Value) -> serde_json::Value {
        let script = format!(
            "import json, sys, boto3\n\
             iam = boto3.client('iam')\n\
             sts = boto3.client('sts')\n\
             args = json.loads(sys.stdin.read())\n\
             result = None\n\
             {snippet}\n\
             print(json.dumps(result, default=str))\n"
        );
        let mut command = Command::new(venv_program("python"));
        command
            .arg("-c")
            .arg(script)
            .envs(self.client_env())
            .env("AWS_ACCESS_KEY_ID", &self.admin.id)
            .env("AWS_SECRET_ACCESS_KEY", &self.admin.secret);
        let output = run_with_stdin(command, args.to_string().as_bytes());
        assert!(
            output.status.success(),
            "boto3 snippet failed against {}:\n{}\n{}",
            self.endpoint,
            snippet,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("boto3 snippet printed JSON")
    }

    /// Creates an IAM user with one access key.
    pub fn create_user_with_key(&self, user: &str) -> AccessKey {
        let answer = self.boto(
            "iam.create_user(UserName=args['user'])\n\
             result = iam.create_access_key(UserName=args['user'])['AccessKey']",
            serde_json::json!({ "user": user }),
        );
        access_key_from(&answer)
    }

    /// Attaches an inline policy (a JSON document) to a user.
    pub fn put_user_policy(&self, user: &str, name: &str, document: &serde_json::Value) {
        self.boto(
            "iam.put_user_policy(UserName=args['user'], PolicyName=args['name'], \
             PolicyDocument=json.dumps(args['doc']))",
            serde_json::json!({ "user": user, "name": name, "doc": document }),
        );
    }

    /// Creates a role that the given principal ARN may assume; returns the role ARN.
    pub fn create_role(&self, role: &str, trusted_principal_arn: &str) -> String {
        let trust = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": { "AWS": trusted_principal_arn },
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]
            }]
        });
        let answer = self.boto(
            "result = iam.create_role(RoleName=args['role'], \
             AssumeRolePolicyDocument=json.dumps(args['trust']))['Role']['Arn']",
            serde_json::json!({ "role": role, "trust": trust }),
        );
        answer.as_str().expect("role ARN").to_owned()
    }

    /// Turns on request authentication: from now on only keys that exist in the endpoint's IAM,
    /// with policies that allow the call, are accepted.
    pub fn enable_auth(&self) {
        let body = http_post(&self.endpoint, "/moto-api/reset-auth", "0");
        assert!(body.contains("\"ok\""), "reset-auth answered: {body}");
    }

    fn create_admin(&self) -> AccessKey {
        let script = "import json, boto3\n\
            iam = boto3.client('iam')\n\
            iam.create_user(UserName='admin')\n\
            iam.put_user_policy(UserName='admin', PolicyName='all', PolicyDocument=json.dumps(\
            {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]}))\n\
            print(json.dumps(iam.create_access_key(UserName='admin')['AccessKey'], default=str))\n";
        let mut command = Command::new(venv_program("python"));
        command
            .arg("-c")
            .arg(script)
            .envs(self.client_env())
            .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "bootstrap-before-auth");
        let output = run_with_stdin(command, b"");
        assert!(
            output.status.success(),
            "creating the admin user failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        access_key_from(&serde_json::from_slice(&output.stdout).expect("admin key JSON"))
    }

    fn wait_ready(&mut self, log_path: &std::path::Path) {
        let deadline = Instant::now() + START_TIMEOUT;
        let address = self.endpoint.trim_start_matches("http://").to_owned();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll moto_server") {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                panic!("moto_server exited ({status}) before answering:\n{log}");
            }
            if TcpStream::connect(&address).is_ok()
                && http_get(&self.endpoint, "/moto-api/data.json").is_some()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on {} within {START_TIMEOUT:?}",
                self.endpoint
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn access_key_from(answer: &serde_json::Value) -> AccessKey {
    AccessKey {
        id: answer["AccessKeyId"]
            .as_str()
            .expect("AccessKeyId")
            .to_owned(),
        secret: answer["SecretAccessKey"]
            .as_str()
            .expect("SecretAccessKey")
            .to_owned(),
    }
}

/// The server runs under `setpriv --pdeathsig KILL` where available, so a test process killed
/// without unwinding (a timeout) does not leak it.
fn pdeathsig_command(program: &PathBuf) -> Command {
    let setpriv = PathBuf::from("/usr/bin/setpriv");
    if setpriv.exists() {
        let mut command = Command::new(setpriv);
        command.args(["--pdeathsig", "KILL", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("local address").port()
}

fn run_with_stdin(mut command: Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the virtualenv's python (run scripts/setup)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait for python")
}

fn http_get(endpoint: &str, path: &str) -> Option<String> {
    http_request(endpoint, "GET", path, "").filter(|r| r.starts_with("HTTP/1.1 200"))
}

fn http_post(endpoint: &str, path: &str, body: &str) -> String {
    http_request(endpoint, "POST", path, body)
        .unwrap_or_else(|| panic!("POST {path} to {endpoint} failed"))
}

/// A minimal HTTP/1.1 exchange for the endpoint's control API (no client crate needed).
fn http_request(endpoint: &str, method: &str, path: &str, body: &str) -> Option<String> {
    use std::io::Write;
    let address = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}
