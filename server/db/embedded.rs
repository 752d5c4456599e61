//! The embedded default database: a private PostgreSQL cluster started from the machine's own
//! PostgreSQL binaries under `<data_dir>/postgres`, reachable only through a Unix socket in that
//! folder. It is created on first start, reused on every later one, and stopped on shutdown.
//!
//! Layout of `<data_dir>`:
//! - `slipway.lock`: held (advisory file lock) by the Slipway process that owns the directory, so a
//!   second Slipway on the same directory is refused instead of sharing or corrupting the cluster.
//! - `postgres/data`: the cluster (`PGDATA`), created by `initdb`.
//! - `postgres/run`: the Unix socket directory (mode 0700, so only its owner can connect).
//! - `postgres/postgres.log`: the server's log, quoted in errors when it fails to start.
//!
//! `initdb` and `postgres` refuse to run as root. When Slipway itself runs as root (containers,
//! CI), the cluster is run as the unprivileged system user `postgres`, which is given the
//! `postgres/` folder.

use std::fs::{File, TryLockError};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sqlx::postgres::PgConnectOptions;

/// The database and role Slipway uses inside its private cluster.
const DB_NAME: &str = "slipway";
const SUPERUSER: &str = "slipway";
/// The unprivileged account used when Slipway runs as root.
const SERVICE_USER: &str = "postgres";
const TOOLS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no PostgreSQL server binaries found (looked for initdb, pg_ctl and postgres in: {searched}).\n\
         Either install PostgreSQL, for example `apt-get install postgresql` (Debian, Ubuntu), \
         `dnf install postgresql-server` (Fedora) or `brew install postgresql@17` (macOS), \
         or set DATABASE_URL to an existing PostgreSQL database, \
         e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/slipway"
    )]
    NoBinaries { searched: String },
    #[error(
        "another Slipway is already running with data directory {dir}{holder}; stop it first, \
         or start this one with a different --data-dir"
    )]
    AlreadyRunning { dir: PathBuf, holder: String },
    #[error(
        "Slipway runs as root, and PostgreSQL refuses to; create the unprivileged system user \
         `{SERVICE_USER}` (e.g. `useradd --system --user-group {SERVICE_USER}`) or run Slipway \
         as a normal user"
    )]
    NoServiceUser,
    #[error(
        "the embedded cluster in {dir} was created by PostgreSQL {found}, but the binaries found \
         are version {binaries}; start Slipway with SLIPWAY_POSTGRES_BIN_DIR pointing at \
         PostgreSQL {found}'s bin directory, or use a new --data-dir"
    )]
    VersionMismatch {
        dir: PathBuf,
        found: String,
        binaries: String,
    },
    #[error(
        "the socket path {path} is too long for a Unix socket (at most 100 bytes); choose a \
         shorter --data-dir"
    )]
    SocketPathTooLong { path: PathBuf },
    #[error("{command} failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{action} {path}: {error}")]
    Io {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> EmbeddedError {
    let path = path.to_owned();
    move |error| EmbeddedError::Io {
        action,
        path,
        error,
    }
}

/// A directory holding `initdb`, `pg_ctl` and `postgres`.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub dir: PathBuf,
}

impl Binaries {
    /// Finds the binaries: in `explicit` when given, else in PATH, else the newest
    /// `/usr/lib/postgresql/*/bin` (Debian, Ubuntu) or other usual install locations.
    pub fn locate(explicit: Option<&Path>) -> Result<Self, EmbeddedError> {
        let candidates: Vec<PathBuf> = match explicit {
            Some(dir) => vec![dir.to_owned()],
            None => {
                let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
                    .map(|p| std::env::split_paths(&p).collect())
                    .unwrap_or_default();
                let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| {
                        let version = e.file_name().to_str()?.parse().ok()?;
                        Some((version, e.path().join("bin")))
                    })
                    .collect();
                versioned.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
                dirs.extend(versioned.into_iter().map(|(_, d)| d));
                dirs.extend(
                    [
                        "/usr/local/pgsql/bin",
                        "/usr/pgsql/bin",
                        "/opt/homebrew/bin",
                    ]
                    .map(PathBuf::from),
                );
                dirs
            }
        };
        candidates
            .iter()
            .find(|d| TOOLS.iter().all(|t| d.join(t).is_file()))
            .map(|d| Binaries { dir: d.clone() })
            .ok_or_else(|| EmbeddedError::NoBinaries {
                searched: candidates
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The major version of these binaries, e.g. `15`.
    fn major_version(&self) -> Result<String, EmbeddedError> {
        let out = run(
            Command::new(self.tool("postgres")).arg("--version"),
            "postgres --version",
        )?;
        // "postgres (PostgreSQL) 15.19 (Debian 15.19-0+deb12u1)"
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .nth(2)
            .and_then(|v| v.split('.').next())
            .map(str::to_owned)
            .ok_or_else(|| EmbeddedError::Command {
                command: "postgres --version".into(),
                detail: format!("unexpected output {text:?}"),
            })
    }
}

/// The unprivileged account that runs the cluster when Slipway is root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
}

impl RunAs {
    fn for_current_process() -> Result<Option<Self>, EmbeddedError> {
        if !nix::unistd::Uid::effective().is_root() {
            return Ok(None);
        }
        let user = nix::unistd::User::from_name(SERVICE_USER)
            .ok()
            .flatten()
            .ok_or(EmbeddedError::NoServiceUser)?;
        Ok(Some(Self {
            uid: user.uid,
            gid: user.gid,
        }))
    }
}

/// How the cluster is reached and who owns its files.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    binaries: Binaries,
    root: PathBuf,
    run_as: Option<RunAs>,
    /// Held for the life of the process: the file lock that makes this Slipway the directory's
    /// only owner. `None` for a shared cluster (the test harness), which is never stopped.
    _lock: Option<File>,
}

impl EmbeddedPostgres {
    /// Starts (or adopts) the cluster under `data_dir/postgres` for this process alone: refuses if
    /// another Slipway holds the directory. Creates the cluster on first use.
    pub fn start(data_dir: &Path, binaries: Binaries) -> Result<Self, EmbeddedError> {
        let data_dir = &absolute_dir(data_dir)?;
        let lock = lock_exclusive(data_dir)?;
        let cluster = Self {
            binaries,
            root: data_dir.join("postgres"),
            run_as: RunAs::for_current_process()?,
            _lock: Some(lock),
        };
        cluster.ensure_running()?;
        Ok(cluster)
    }

    /// Like [`EmbeddedPostgres::start`], but when another Slipway (a running `serve`) owns the
    /// directory, connects to the cluster it runs as a guest instead of refusing: the admin
    /// commands work beside the server. A guest never stops the cluster.
    pub fn start_or_join(data_dir: &Path, binaries: Binaries) -> Result<Self, EmbeddedError> {
        match Self::start(data_dir, binaries.clone()) {
            Err(refused @ EmbeddedError::AlreadyRunning { .. }) => {
                let guest = Self {
                    binaries,
                    root: absolute_dir(data_dir)?.join("postgres"),
                    run_as: RunAs::for_current_process()?,
                    _lock: None,
                };
                if guest.is_running() {
                    Ok(guest)
                } else {
                    Err(refused)
                }
            }
            other => other,
        }
    }

    /// Starts (or joins) a cluster that several processes share and none stops, such as the test
    /// harness's fallback cluster. Creation is serialised by a short-lived lock.
    pub fn start_shared(data_dir: &Path, binaries: Binaries) -> Result<Self, EmbeddedError> {
        let data_dir = &absolute_dir(data_dir)?;
        let lock_path = data_dir.join("start.lock");
        let lock = File::create(&lock_path).map_err(io_err("cannot create", &lock_path))?;
        lock.lock().map_err(io_err("cannot lock", &lock_path))?;
        let cluster = Self {
            binaries,
            root: data_dir.join("postgres"),
            run_as: RunAs::for_current_process()?,
            _lock: None,
        };
        cluster.ensure_running()?;
        drop(lock);
        Ok(cluster)
    }

    fn pgdata(&self) -> PathBuf {
        self.root.join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    fn log_file(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// Connection options for the `slipway` database over the private socket.
    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(self.socket_dir())
            .username(SUPERUSER)
            .database(DB_NAME)
    }

    /// The same, for the maintenance database `postgres` (to create databases).
    pub fn admin_options(&self) -> PgConnectOptions {
        self.connect_options().database("postgres")
    }

    fn ensure_running(&self) -> Result<(), EmbeddedError> {
        self.prepare_dirs()?;
        let pgdata = self.pgdata();
        if pgdata.join("PG_VERSION").is_file() {
            let found = std::fs::read_to_string(pgdata.join("PG_VERSION"))
                .map_err(io_err("cannot read", &pgdata))?
                .trim()
                .to_owned();
            let binaries = self.binaries.major_version()?;
            if found != binaries {
                return Err(EmbeddedError::VersionMismatch {
                    dir: pgdata,
                    found,
                    binaries,
                });
            }
        } else {
            self.initdb()?;
        }
        self.write_settings()?;
        if self.is_running() {
            // The lock is ours, so this is the cluster of a Slipway that died without stopping
            // it (e.g. `kill -9`): adopt it.
            tracing::info!(dir = %pgdata.display(), "adopting the embedded PostgreSQL left running");
            return Ok(());
        }
        tracing::info!(dir = %pgdata.display(), "starting the embedded PostgreSQL");
        let log = self.log_file();
        let result = self
            .pg_command("pg_ctl")
            .args(["start", "--wait", "--timeout=60", "--silent", "-D"])
            .arg(&pgdata)
            .arg("-l")
            .arg(&log)
            .output();
        match result {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(EmbeddedError::Command {
                command: "pg_ctl start".into(),
                detail: format!(
                    "{}{}\nlast lines of {}:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    log.display(),
                    tail(&log, 15)
                ),
            }),
            Err(e) => Err(io_err("cannot run pg_ctl for", &pgdata)(e)),
        }
    }

    /// Creates `postgres/` and its socket folder, owned by the account that runs the cluster.
    fn prepare_dirs(&self) -> Result<(), EmbeddedError> {
        let socket_dir = self.socket_dir();
        std::fs::create_dir_all(&socket_dir).map_err(io_err("cannot create", &socket_dir))?;
        // Only the cluster's owner may use the socket: with trust authentication inside, the
        // folder's permissions are the access control.
        for (dir, mode) in [(&self.root, 0o700), (&socket_dir, 0o700)] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
                .map_err(io_err("cannot set permissions of", dir))?;
        }
        let socket_file = socket_dir.join(".s.PGSQL.5432");
        if socket_file.as_os_str().len() > 100 {
            return Err(EmbeddedError::SocketPathTooLong { path: socket_file });
        }
        if let Some(owner) = self.run_as {
            // The cluster's owner must be able to pass through the data directory (but not list
            // it) to reach `postgres/`.
            if let Some(data_dir) = self.root.parent() {
                std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o711))
                    .map_err(io_err("cannot set permissions of", data_dir))?;
            }
            for dir in [&self.root, &socket_dir] {
                let meta = std::fs::metadata(dir).map_err(io_err("cannot inspect", dir))?;
                if meta.uid() != owner.uid.as_raw() {
                    chown_tree(&self.root, owner)?;
                    break;
                }
            }
        }
        Ok(())
    }

    fn initdb(&self) -> Result<(), EmbeddedError> {
        let pgdata = self.pgdata();
        tracing::info!(dir = %pgdata.display(), "creating the embedded PostgreSQL cluster (first start)");
        let out = self
            .pg_command("initdb")
            .args([
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--username",
                SUPERUSER,
                "-D",
            ])
            .arg(&pgdata)
            .output()
            .map_err(io_err("cannot run initdb for", &pgdata))?;
        if !out.status.success() {
            return Err(EmbeddedError::Command {
                command: "initdb".into(),
                detail: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        // Our settings live in a file of their own, rewritten at each start.
        let conf = pgdata.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(io_err("cannot open", &conf))?;
        writeln!(file, "\n# Added by Slipway: its settings, rewritten at each start.\ninclude_if_exists = 'slipway.conf'")
            .map_err(io_err("cannot write", &conf))?;
        Ok(())
    }

    /// Socket-only networking in our private folder; no TCP port to collide with or expose.
    fn write_settings(&self) -> Result<(), EmbeddedError> {
        let path = self.pgdata().join("slipway.conf");
        let socket_dir = self.socket_dir().to_string_lossy().replace('\'', "''");
        let text = format!(
            "listen_addresses = ''\n\
             unix_socket_directories = '{socket_dir}'\n\
             unix_socket_permissions = 0700\n\
             max_connections = 200\n"
        );
        std::fs::write(&path, text).map_err(io_err("cannot write", &path))?;
        if let Some(owner) = self.run_as {
            std::os::unix::fs::chown(&path, Some(owner.uid.as_raw()), Some(owner.gid.as_raw()))
                .map_err(io_err("cannot change the owner of", &path))?;
        }
        Ok(())
    }

    fn is_running(&self) -> bool {
        // `pg_ctl status` exits 0 when a server runs on the data directory, 3 when not.
        self.pg_command("pg_ctl")
            .args(["status", "-D"])
            .arg(self.pgdata())
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Creates the `slipway` database when it does not exist yet.
    pub async fn ensure_database(&self) -> Result<(), sqlx::Error> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect_with(&self.admin_options()).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(DB_NAME)
                .fetch_one(&mut conn)
                .await?;
        if !exists {
            // An identifier cannot be a bound parameter: the name is spelt out (it is DB_NAME).
            sqlx::query("CREATE DATABASE slipway")
                .execute(&mut conn)
                .await?;
        }
        conn.close().await
    }

    /// Stops the cluster (fast shutdown: sessions are ended, data is flushed). A shared cluster is
    /// left running for the other processes that use it.
    pub fn stop(self) -> Result<(), EmbeddedError> {
        if self._lock.is_none() {
            return Ok(());
        }
        tracing::info!("stopping the embedded PostgreSQL");
        let postmaster = self.postmaster_pid();
        let out = self
            .pg_command("pg_ctl")
            .args([
                "stop",
                "--wait",
                "--timeout=60",
                "--silent",
                "--mode=fast",
                "-D",
            ])
            .arg(self.pgdata())
            .output()
            .map_err(io_err("cannot run pg_ctl for", &self.root))?;
        if out.status.success() {
            // `pg_ctl stop --wait` returns once the pid file is gone, a moment before the
            // postmaster has exited; the lock is released only after it has, so the next start
            // never meets a cluster still shutting down.
            if let Some(pid) = postmaster {
                wait_for_exit(pid, std::time::Duration::from_secs(10));
            }
            Ok(())
        } else {
            Err(EmbeddedError::Command {
                command: "pg_ctl stop".into(),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }

    /// The postmaster's process id, from the first line of `postmaster.pid`.
    fn postmaster_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.pgdata().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// A command for one of the PostgreSQL tools, run as the cluster's owner.
    fn pg_command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(self.binaries.tool(tool));
        // The tools change into their working directory's parent checks; use one they may enter.
        cmd.current_dir(&self.root);
        cmd.env_remove("PGDATA").env("LC_ALL", "C");
        if let Some(owner) = self.run_as {
            // std drops root's supplementary groups when it switches the user id.
            use std::os::unix::process::CommandExt;
            cmd.uid(owner.uid.as_raw()).gid(owner.gid.as_raw());
        }
        cmd
    }
}

/// Waits (at most `limit`) until process `pid` has exited: no longer there, or a zombie waiting
/// for its parent to collect it.
fn wait_for_exit(pid: i32, limit: std::time::Duration) {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        let running = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        });
        if !running {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    tracing::warn!(pid, "the embedded PostgreSQL is still exiting");
}

/// Creates the directory and returns its absolute path: the PostgreSQL tools run in another
/// working directory, so relative paths would point elsewhere.
fn absolute_dir(dir: &Path) -> Result<PathBuf, EmbeddedError> {
    std::fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    std::fs::canonicalize(dir).map_err(io_err("cannot resolve", dir))
}

/// Takes the directory's owner lock without waiting, and records our pid in it.
fn lock_exclusive(data_dir: &Path) -> Result<File, EmbeddedError> {
    let path = data_dir.join("slipway.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err("cannot open", &path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .map(|pid| pid.trim().to_owned())
                .filter(|pid| !pid.is_empty())
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default();
            return Err(EmbeddedError::AlreadyRunning {
                dir: data_dir.to_owned(),
                holder,
            });
        }
        Err(TryLockError::Error(e)) => return Err(io_err("cannot lock", &path)(e)),
    }
    file.set_len(0).map_err(io_err("cannot write", &path))?;
    write!(file, "{}", std::process::id()).map_err(io_err("cannot write", &path))?;
    Ok(file)
}

fn chown_tree(dir: &Path, owner: RunAs) -> Result<(), EmbeddedError> {
    std::os::unix::fs::lchown(dir, Some(owner.uid.as_raw()), Some(owner.gid.as_raw()))
        .map_err(io_err("cannot change the owner of", dir))?;
    if dir.is_dir() && !dir.is_symlink() {
        for entry in std::fs::read_dir(dir).map_err(io_err("cannot read", dir))? {
            let entry = entry.map_err(io_err("cannot read", dir))?;
            chown_tree(&entry.path(), owner)?;
        }
    }
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> Result<Output, EmbeddedError> {
    let out = cmd.output().map_err(|e| EmbeddedError::Command {
        command: what.to_owned(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(EmbeddedError::Command {
            command: what.to_owned(),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// The last `lines` lines of a log file, for error messages.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
