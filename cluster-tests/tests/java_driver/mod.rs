//! The Java side of `sdk_java.rs`: finding java, javac, JNA and libquorumlm, compiling the
//! binding with its test driver, and driving one Java program per simulated application.

pub mod delay_proxy;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How long one driver command may take (a checkout that fails over included).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// What the tests need to run Java against libquorumlm.
pub struct Toolchain {
    java: PathBuf,
    classpath: String,
    lib_dir: PathBuf,
}

const INSTALL: &str = "`make test` installs them (scripts/test-deps.sh, scripts/java-sdk.sh); \
    by hand: apt-get install default-jdk-headless libjna-java, then cargo build -p qlm-capi";

/// `target/<profile>`: where cargo put this test binary's sibling libraries and binaries.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("this binary's path");
    let dir = exe.parent().expect("target/<profile>/deps");
    if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

fn tool(name: &str) -> PathBuf {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output();
    match found {
        Ok(out) if out.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
        _ => panic!("`{name}` is not installed: the Java binding test needs it. {INSTALL}"),
    }
}

fn java_sources(dir: &Path, into: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            java_sources(&path, into);
        } else if path.extension().is_some_and(|e| e == "java") {
            into.push(path);
        }
    }
}

/// Finds the tools and the library, and compiles the binding, the driver and the example
/// (once per test binary) into `target/java/sdk-test`.
pub fn toolchain() -> &'static Toolchain {
    static TOOLCHAIN: OnceLock<Toolchain> = OnceLock::new();
    TOOLCHAIN.get_or_init(|| {
        let java = tool("java");
        let javac = tool("javac");
        let jna = PathBuf::from(
            std::env::var("JNA_JAR").unwrap_or_else(|_| "/usr/share/java/jna.jar".into()),
        );
        assert!(
            jna.is_file(),
            "{} is missing: the Java binding needs JNA. {INSTALL}",
            jna.display()
        );
        let lib_dir =
            std::env::var("QUORUMLM_LIB_DIR").map_or_else(|_| profile_dir(), PathBuf::from);
        assert!(
            lib_dir.join("libquorumlm.so").is_file(),
            "{} has no libquorumlm.so: build the C library first (cargo build -p qlm-capi, or \
             make java-sdk), or set QUORUMLM_LIB_DIR",
            lib_dir.display()
        );
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = profile_dir().parent().map_or_else(profile_dir, Path::to_path_buf);
        let classes = out.join("java").join("sdk-test");
        let _ = std::fs::remove_dir_all(&classes);
        std::fs::create_dir_all(&classes).expect("the class directory");
        let mut sources = Vec::new();
        for dir in ["src/java/src/main/java", "src/java/tests", "src/java/examples"] {
            java_sources(&root.join(dir), &mut sources);
        }
        let compiled = Command::new(&javac)
            .args(["-Xlint:all", "-Werror", "--release", "17", "-encoding", "UTF-8", "-cp"])
            .arg(&jna)
            .arg("-d")
            .arg(&classes)
            .args(&sources)
            .output()
            .expect("javac runs");
        assert!(
            compiled.status.success(),
            "javac failed:\n{}{}",
            String::from_utf8_lossy(&compiled.stdout),
            String::from_utf8_lossy(&compiled.stderr)
        );
        let classpath = format!("{}:{}", jna.display(), classes.display());
        Toolchain { java, classpath, lib_dir }
    })
}

impl Toolchain {
    /// `java` with the library path and class path set, the environment cleared of license
    /// settings and `USER` set to `user` (holders name it).
    pub fn java(&self, user: &str) -> Command {
        let mut command = Command::new(&self.java);
        command
            .args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx64m"])
            .arg(format!("-Djna.library.path={}", self.lib_dir.display()))
            .args(["-cp", &self.classpath])
            .env_remove("QLM_LICENSE")
            .env_remove("QLM_SERVERS")
            .env("USER", user);
        command
    }
}

/// One running driver (src/java/tests/com/quorumlm/sdktest/Driver.java): an application
/// using the binding, one command per line.
pub struct JavaProgram {
    pub user: String,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    /// Lines starting with "event" (the lost listener), in order.
    pub events: Vec<String>,
    transcript: Vec<String>,
    stderr: tempfile::NamedTempFile,
}

impl JavaProgram {
    /// Starts a driver as `user` and waits for it to be ready.
    pub fn start(user: &str) -> JavaProgram {
        let stderr = tempfile::NamedTempFile::new().expect("a file for stderr");
        let mut child = toolchain()
            .java(user)
            .arg("com.quorumlm.sdktest.Driver")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr.reopen().expect("stderr file")))
            .spawn()
            .expect("java starts");
        let stdin = child.stdin.take().expect("its stdin");
        let stdout = child.stdout.take().expect("its stdout");
        let (send, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        let mut program = JavaProgram {
            user: user.into(),
            child,
            stdin,
            lines,
            events: Vec::new(),
            transcript: Vec::new(),
            stderr,
        };
        program.expect_answer(ANSWER_TIMEOUT, "ready");
        program
    }

    /// Sends one command without waiting for its answer.
    pub fn send(&mut self, command: &str) {
        self.transcript.push(format!("> {command}"));
        let written = writeln!(self.stdin, "{command}").and_then(|()| self.stdin.flush());
        if let Err(e) = written {
            panic!("{}: cannot send `{command}`: {e}\n{}", self.user, self.report());
        }
    }

    /// The next answer (events are set aside), or None when none came within `within`.
    pub fn try_answer(&mut self, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.transcript.push(format!("< {line}"));
                    if line.starts_with("event") {
                        self.events.push(line);
                    } else {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: the Java program ended\n{}", self.user, self.report())
                }
            }
        }
    }

    /// The next answer; panics with the transcript when none comes in time.
    pub fn answer(&mut self, within: Duration) -> String {
        match self.try_answer(within) {
            Some(line) => line,
            None => panic!("{}: no answer within {within:?}\n{}", self.user, self.report()),
        }
    }

    fn expect_answer(&mut self, within: Duration, prefix: &str) -> String {
        let line = self.answer(within);
        assert!(
            line.starts_with(prefix),
            "{}: expected `{prefix}`, got `{line}`\n{}",
            self.user,
            self.report()
        );
        line
    }

    /// Sends a command and returns its answer.
    pub fn ask(&mut self, command: &str) -> String {
        self.send(command);
        self.answer(ANSWER_TIMEOUT)
    }

    /// Sends a command whose answer must be "ok".
    pub fn ok(&mut self, command: &str) {
        self.send(command);
        self.expect_answer(ANSWER_TIMEOUT, "ok");
    }

    /// Checks `feature` out as `name`; panics unless granted. Returns the granted line.
    pub fn granted(&mut self, name: &str, feature_and_options: &str) -> String {
        self.send(&format!("checkout {name} {feature_and_options}"));
        self.expect_answer(ANSWER_TIMEOUT, &format!("granted {name} "))
    }

    /// The session id the program's session has on the cluster.
    pub fn session_id(&mut self) -> String {
        let status = self.ask("status");
        field(&status, "session")
            .unwrap_or_else(|| panic!("no session id in `{status}`"))
            .to_string()
    }

    /// Kills the JVM with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Commands and answers so far, and what the program wrote to stderr.
    pub fn report(&self) -> String {
        let stderr = std::fs::read_to_string(self.stderr.path()).unwrap_or_default();
        format!(
            "--- {} transcript:\n{}\n--- stderr:\n{stderr}",
            self.user,
            self.transcript.join("\n")
        )
    }
}

impl Drop for JavaProgram {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `key=value` in an answer line (`source=` takes the rest of the line).
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("{key}=");
    if key == "source" {
        return line.find(" source=").map(|at| &line[at + prefix.len() + 1..]);
    }
    line.split_whitespace().find_map(|word| word.strip_prefix(prefix.as_str()))
}
