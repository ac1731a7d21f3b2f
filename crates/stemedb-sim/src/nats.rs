//! [`NatsCluster`]: NATS servers with JetStream on loopback, as child processes, for the
//! replication tests, benchmark and arenas: start, SIGKILL, restart.
//!
//! [`NatsCluster::start_with`] starts servers that require authentication: each client logs in
//! as one of [`NatsOptions::users`], with that user's publish and subscribe permissions.
//!
//! The binary is `$STEMEDB_NATS_SERVER`, else `nats-server` on `PATH` (Debian's package
//! `nats-server`; `.ci/run` installs it when missing).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a server takes to accept connections after it is started.
pub const NATS_START_TIMEOUT: Duration = Duration::from_secs(20);

/// A client user of a [`NatsCluster`] that requires authentication: how it logs in, and the
/// subjects it may publish and subscribe to (an empty list leaves that side unrestricted).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NatsUser {
    /// The user name, for user and password login; empty for an nkey user.
    pub user: String,
    /// The password of `user`.
    pub password: String,
    /// The user's public nkey (`U...`), for nkey login instead of a name and password.
    pub nkey: Option<String>,
    /// Subjects the user may publish on (wildcards allowed); empty: any.
    pub publish_allow: Vec<String>,
    /// Subjects the user may not publish on, even when `publish_allow` matches them.
    pub publish_deny: Vec<String>,
    /// Subjects the user may subscribe to; empty: any.
    pub subscribe_allow: Vec<String>,
}

impl NatsUser {
    /// A user that logs in with `user` and `password` and may publish and subscribe anywhere.
    pub fn password(user: &str, password: &str) -> Self {
        Self {
            user: user.to_owned(),
            password: password.to_owned(),
            ..Self::default()
        }
    }

    /// A user that logs in with the nkey whose public key is `public_key` (`U...`).
    pub fn nkey(public_key: &str) -> Self {
        Self {
            nkey: Some(public_key.to_owned()),
            ..Self::default()
        }
    }

    /// Returns the user with the permissions a StemeDB node needs on stream `stream` of
    /// subject `subject`, and no more: publish on the subject; the JetStream API requests to
    /// find or create that stream and to run its ordered pull consumers; replies to its own
    /// inboxes. Deleting, purging or changing the stream, and removing its messages, are
    /// denied (also when a broader `$JS.API.>` is allowed later).
    pub fn stemedb_node(mut self, stream: &str, subject: &str) -> Self {
        self.publish_allow = vec![
            subject.to_owned(),
            format!("$JS.API.STREAM.INFO.{stream}"),
            format!("$JS.API.STREAM.CREATE.{stream}"),
            format!("$JS.API.CONSUMER.CREATE.{stream}"),
            format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.>"),
            format!("$JS.API.CONSUMER.DELETE.{stream}.>"),
        ];
        self.publish_deny = vec![
            format!("$JS.API.STREAM.DELETE.{stream}"),
            format!("$JS.API.STREAM.PURGE.{stream}"),
            format!("$JS.API.STREAM.UPDATE.{stream}"),
            format!("$JS.API.STREAM.MSG.DELETE.{stream}"),
        ];
        self.subscribe_allow = vec!["_INBOX.>".to_owned()];
        self
    }

    /// The user's entry in a server conf's `authorization.users`.
    fn conf_entry(&self) -> String {
        let list = |subjects: &[String]| {
            let quoted: Vec<String> = subjects.iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", quoted.join(", "))
        };
        let mut login = match &self.nkey {
            Some(key) => format!("nkey: {key:?}"),
            None => format!("user: {:?}, password: {:?}", self.user, self.password),
        };
        let mut publish = Vec::new();
        if !self.publish_allow.is_empty() {
            publish.push(format!("allow: {}", list(&self.publish_allow)));
        }
        if !self.publish_deny.is_empty() {
            publish.push(format!("deny: {}", list(&self.publish_deny)));
        }
        let mut permissions = Vec::new();
        if !publish.is_empty() {
            permissions.push(format!("publish: {{ {} }}", publish.join(", ")));
        }
        if !self.subscribe_allow.is_empty() {
            permissions.push(format!("subscribe: {{ allow: {} }}", list(&self.subscribe_allow)));
        }
        if !permissions.is_empty() {
            login.push_str(&format!(", permissions: {{ {} }}", permissions.join(", ")));
        }
        format!("    {{ {login} }}\n")
    }
}

/// How [`NatsCluster::start_with`] configures its servers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NatsOptions {
    /// The servers' largest message in bytes; the server's default (1 MiB) when `None`.
    pub max_payload: Option<usize>,
    /// The client users; when not empty, every client must log in as one of them.
    pub users: Vec<NatsUser>,
    /// TLS for client connections: when set, every client must speak TLS.
    pub tls: Option<NatsTls>,
}

/// The TLS of a [`NatsCluster`]'s client connections (the routes between servers stay plain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsTls {
    /// PEM file of the servers' certificate.
    pub cert_file: PathBuf,
    /// PEM file of its private key.
    pub key_file: PathBuf,
    /// PEM file of the CAs whose client certificates the servers require; `None` asks
    /// clients for no certificate.
    pub verify_clients_ca_file: Option<PathBuf>,
}

/// One server of a [`NatsCluster`].
#[derive(Debug)]
struct Server {
    name: String,
    config: PathBuf,
    client_port: u16,
    child: Option<Child>,
}

/// NATS servers with JetStream, clustered when more than one; see the module docs. Dropping it
/// kills every server.
#[derive(Debug)]
pub struct NatsCluster {
    servers: Vec<Server>,
    binary: PathBuf,
}

/// Returns the `nats-server` binary to run, or why there is none.
pub fn nats_server_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("STEMEDB_NATS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("nats-server"))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            "nats-server not found: install it (Debian: `apt-get install nats-server`) or set STEMEDB_NATS_SERVER"
                .to_owned()
        })
}

/// Starts of a cluster tried before [`NatsCluster::start_with`] gives up.
pub const START_ATTEMPTS: u32 = 3;

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl NatsCluster {
    /// Starts `size` servers (1 to 5) with their stores under `dir`, each accepting clients
    /// before this returns. `max_payload` sets the servers' largest message (default 1 MiB).
    pub fn start(dir: &Path, size: usize, max_payload: Option<usize>) -> std::io::Result<Self> {
        let options = NatsOptions {
            max_payload,
            ..NatsOptions::default()
        };
        Self::start_with(dir, size, &options)
    }

    /// Starts `size` servers (1 to 5) configured by `options`, with their stores under `dir`,
    /// each accepting clients before this returns.
    ///
    /// Free ports are found by binding port 0 and letting it go, so another process (or test)
    /// may take one before a server binds it, and that server exits at start. Such a start is
    /// made again, with other ports and empty stores, up to `START_ATTEMPTS` (3) times.
    pub fn start_with(dir: &Path, size: usize, options: &NatsOptions) -> std::io::Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::start_once(dir, size, options) {
                Err(error) if attempt < START_ATTEMPTS && error.to_string().contains("exited with") => {
                    tracing::warn!(%error, attempt, "a nats-server exited at start; starting the cluster again on other ports");
                    for index in 0..size {
                        let _ = std::fs::remove_dir_all(dir.join(format!("n{index}")));
                    }
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    fn start_once(dir: &Path, size: usize, options: &NatsOptions) -> std::io::Result<Self> {
        assert!((1..=5).contains(&size), "a cluster of 1 to 5 servers");
        let binary = nats_server_binary().map_err(std::io::Error::other)?;
        let mut ports = Vec::with_capacity(size);
        for _ in 0..size {
            ports.push((free_port()?, free_port()?));
        }
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, cluster)| format!("\"nats-route://127.0.0.1:{cluster}\""))
            .collect();
        let mut servers = Vec::with_capacity(size);
        for (index, (client, cluster)) in ports.iter().enumerate() {
            let name = format!("n{index}");
            let store = dir.join(&name);
            std::fs::create_dir_all(&store)?;
            let mut text = format!(
                "server_name: {name}\nlisten: \"127.0.0.1:{client}\"\njetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 268435456\n  max_file_store: 17179869184\n}}\n",
                store.display()
            );
            if let Some(max) = options.max_payload {
                text.push_str(&format!("max_payload: {max}\n"));
            }
            if !options.users.is_empty() {
                // Client logins only: the cluster's routes are not affected.
                text.push_str("authorization {\n  users = [\n");
                for user in &options.users {
                    text.push_str(&user.conf_entry());
                }
                text.push_str("  ]\n}\n");
            }
            if let Some(tls) = &options.tls {
                text.push_str(&format!(
                    "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n",
                    tls.cert_file.display(),
                    tls.key_file.display()
                ));
                if let Some(ca) = &tls.verify_clients_ca_file {
                    text.push_str(&format!("  ca_file: \"{}\"\n  verify: true\n", ca.display()));
                }
                text.push_str("}\n");
            }
            if size > 1 {
                text.push_str(&format!(
                    "cluster {{\n  name: stemedb\n  listen: \"127.0.0.1:{cluster}\"\n  routes: [{}]\n}}\n",
                    routes.join(", ")
                ));
            }
            let config = dir.join(format!("{name}.conf"));
            std::fs::write(&config, text)?;
            servers.push(Server {
                name,
                config,
                client_port: *client,
                child: None,
            });
        }
        let mut cluster = Self { servers, binary };
        for index in 0..size {
            cluster.spawn(index)?;
        }
        for index in 0..size {
            cluster.wait_accepting(index)?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, index: usize) -> std::io::Result<()> {
        let server = &mut self.servers[index];
        let log = server.config.with_extension("log");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&server.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log)?)
            .spawn()?;
        server.child = Some(child);
        Ok(())
    }

    /// Waits until server `index` accepts TCP connections.
    fn wait_accepting(&mut self, index: usize) -> std::io::Result<()> {
        let started = Instant::now();
        let address = format!("127.0.0.1:{}", self.servers[index].client_port);
        loop {
            if std::net::TcpStream::connect(&address).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.servers[index].child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(std::io::Error::other(format!(
                    "nats-server {} exited with {status}; see {}",
                    self.servers[index].name,
                    self.servers[index].config.with_extension("log").display()
                )));
            }
            if started.elapsed() > NATS_START_TIMEOUT {
                return Err(std::io::Error::other(format!(
                    "nats-server {} did not start",
                    self.servers[index].name
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Returns every server's client URL.
    pub fn urls(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|server| format!("nats://127.0.0.1:{}", server.client_port))
            .collect()
    }

    /// Returns the index of the server named `name` (`n0`, `n1`, ...).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|server| server.name == name)
    }

    /// Returns how many servers the cluster has.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Returns true if the cluster has no server.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Returns the CPU time (user and system) the running servers have used, from
    /// `/proc/<pid>/stat`; zero for a server whose figures cannot be read.
    pub fn cpu_time(&self) -> Duration {
        const TICKS_PER_SECOND: u64 = 100;
        let ticks: u64 = self
            .servers
            .iter()
            .filter_map(|server| server.child.as_ref())
            .filter_map(|child| std::fs::read_to_string(format!("/proc/{}/stat", child.id())).ok())
            .filter_map(|stat| {
                // Fields after the command name, which is in parentheses: utime is the 12th and
                // stime the 13th of them.
                let rest = stat.rsplit_once(')')?.1;
                let fields: Vec<&str> = rest.split_whitespace().collect();
                Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
            })
            .sum();
        Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
    }

    /// SIGKILLs server `index` and reaps it.
    pub fn kill(&mut self, index: usize) -> std::io::Result<()> {
        if let Some(mut child) = self.servers[index].child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts server `index` again, on its store and ports; returns once it accepts clients.
    pub fn restart(&mut self, index: usize) -> std::io::Result<()> {
        self.kill(index)?;
        self.spawn(index)?;
        self.wait_accepting(index)
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.servers.len() {
            let _ = self.kill(index);
        }
    }
}
