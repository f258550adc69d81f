//! What sipbeat's tests, fuzz targets and benchmarks share that is not
//! sipbeat: a throw-away Kafka broker — tansu (Kafka wire protocol, memory
//! storage) stands in for Apache Kafka, which cannot be installed here —
//! a strict reader for the events sipbeat writes ([`json`]) and for its
//! counters and summary ([`log`]), frames
//! wrapped in tunnels ([`tunnel`]), capture files ([`capture`]), and the
//! container image's build context ([`image`]).

pub mod capture;
pub mod image;
pub mod json;
pub mod log;
pub mod tunnel;

use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tansu binary: `$TANSU`, on `PATH`, or in cargo's bin directory.
pub fn tansu_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TANSU") {
        return Some(PathBuf::from(path));
    }
    let on_path = Command::new("sh")
        .args(["-c", "command -v tansu"])
        .output()
        .ok()?;
    if on_path.status.success() {
        return Some(PathBuf::from(
            String::from_utf8_lossy(&on_path.stdout).trim(),
        ));
    }
    let path = cargo_bin("tansu");
    path.exists().then_some(path)
}

/// Where `cargo install` puts `name`.
pub fn cargo_bin(name: &str) -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        })
        .join("bin")
        .join(name)
}

/// A tansu broker on a free loopback port with memory storage, stopped (and
/// its directory removed) on drop. Its storage forgets everything on
/// restart, so outages are simulated with [`Tansu::signal`] (`-STOP`/`-CONT`).
pub struct Tansu {
    child: Child,
    port: u16,
    binary: PathBuf,
    dir: PathBuf,
}

impl Tansu {
    /// Starts `binary` and waits until it accepts connections.
    pub fn start(binary: &Path, name: &str) -> io::Result<Tansu> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        // A directory of its own: tansu reads a `.env` from where it starts.
        let dir = std::env::temp_dir().join(format!("sipbeat-tansu-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(binary)
            .current_dir(&dir)
            .env_remove("RUST_LOG")
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let tansu = Tansu {
            child,
            port,
            binary: binary.to_path_buf(),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("tansu did not listen on {port}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(tansu)
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates `topic` (tansu does not create topics on first use).
    pub fn create_topic(&self, topic: &str, partitions: u32) -> io::Result<()> {
        let status = Command::new(&self.binary)
            .current_dir(&self.dir)
            .env_remove("RUST_LOG")
            .args([
                "topic",
                "create",
                topic,
                "--broker",
                &format!("tcp://{}", self.address()),
            ])
            .args(["--partitions", &partitions.to_string()])
            .stdout(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "tansu topic create {topic}: {status}"
            )))
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`, ...) to the broker.
    pub fn signal(&self, signal: &str) -> io::Result<()> {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill {signal}: {status}")))
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
