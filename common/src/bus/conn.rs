//! Connections to the bus: one Redis server, or a Redis Cluster (`REDIS_CLUSTER_URLS`).
//!
//! Every service talks to Redis through [`Conn`], which is either a single server's reconnecting
//! multiplexed connection, the `redis` crate's cluster connection (which follows the slot map and
//! `MOVED`/`ASK` redirects), or a [`NodeConn`]: a connection of its own to the one node that serves
//! a key, for blocking reads (a blocking command holds its connection while it waits, so it cannot
//! share the cluster connection's per-node connections). All three speak
//! [`redis::aio::ConnectionLike`], so commands, pipelines and scripts are written once.
//!
//! Pipelines: the cluster connection refuses a pipeline whose commands fall in different slots;
//! [`Conn`] splits such a pipeline by slot, sends the parts at once and puts the replies back in
//! order, so a pipeline of unrelated keys (a marker, a cancel flag, an owner) keeps working on a
//! cluster. Transactions (`MULTI`) are never split: their keys must share a slot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, join_all};
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};

/// Where the bus lives: one server, or a cluster known by some of its nodes.
#[derive(Clone)]
pub enum Topology {
    /// One Redis server (or a primary behind one address).
    Single(redis::Client),
    /// A Redis Cluster.
    Cluster(Arc<ClusterTopology>),
}

/// A cluster: its client, and the nodes known so far (the configured ones, then every node a
/// redirect named), for connections of their own.
pub struct ClusterTopology {
    client: ClusterClient,
    /// The first configured node's settings (credentials, TLS), applied to every node.
    template: ConnectionInfo,
    known: Mutex<Vec<String>>,
    next: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Single(_) => f.write_str("Single"),
            Self::Cluster(c) => f
                .debug_struct("Cluster")
                .field("known_nodes", &c.known_nodes().len())
                .finish(),
        }
    }
}

/// `host:port` of a node address.
fn addr_text(addr: &ConnectionAddr) -> Option<String> {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            Some(format!("{host}:{port}"))
        }
        _ => None,
    }
}

/// The host and port of a node's `host:port`.
fn host_port(addr: &str) -> RedisResult<(String, u16)> {
    addr.rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            RedisError::from((
                ErrorKind::InvalidClientConfig,
                "bad node address",
                addr.to_owned(),
            ))
        })
}

impl Topology {
    /// One server at `url`.
    pub fn single(url: &str) -> RedisResult<Self> {
        Ok(Self::Single(redis::Client::open(url)?))
    }

    /// A cluster reached through any of `urls` (at least one).
    pub fn cluster(urls: &[String], response_timeout: Duration) -> RedisResult<Self> {
        let infos = urls
            .iter()
            .map(|u| u.as_str().into_connection_info())
            .collect::<RedisResult<Vec<_>>>()?;
        let template = infos.first().cloned().ok_or_else(|| {
            RedisError::from((ErrorKind::InvalidClientConfig, "no cluster node given"))
        })?;
        let known: Vec<String> = infos.iter().filter_map(|i| addr_text(i.addr())).collect();
        if known.len() != infos.len() {
            return Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "cluster nodes are reached over TCP: give redis:// or rediss:// URLs",
            )));
        }
        let client = ClusterClientBuilder::new(infos)
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(response_timeout)
            .retries(6)
            .min_retry_wait(50)
            .max_retry_wait(1000)
            .build()?;
        Ok(Self::Cluster(Arc::new(ClusterTopology {
            client,
            template,
            known: Mutex::new(known),
            next: std::sync::atomic::AtomicUsize::new(0),
        })))
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// The shared multiplexed connection, reconnecting by itself.
    pub async fn shared(&self, response_timeout: Duration) -> RedisResult<Conn> {
        match self {
            Self::Single(client) => Ok(Conn::Single(
                ConnectionManager::new_with_config(
                    client.clone(),
                    manager_config(response_timeout),
                )
                .await?,
            )),
            Self::Cluster(cluster) => {
                Ok(Conn::Cluster(cluster.client.get_async_connection().await?))
            }
        }
    }

    /// A connection of its own for blocking reads of `key` (its response timeout allows for the
    /// block time): on a single server a reconnecting connection, on a cluster a [`NodeConn`] to
    /// the node that serves the key.
    pub async fn blocking(&self, key: &str, response_timeout: Duration) -> RedisResult<Conn> {
        match self {
            Self::Single(client) => Ok(Conn::Single(
                ConnectionManager::new_with_config(
                    client.clone(),
                    manager_config(response_timeout),
                )
                .await?,
            )),
            Self::Cluster(_) => {
                let mut node = self.node_conn(response_timeout);
                node.follow(key).await?;
                Ok(Conn::Node(Box::new(node)))
            }
        }
    }

    /// A connection of its own to one node, not connected yet (see [`NodeConn`]).
    pub fn node_conn(&self, response_timeout: Duration) -> NodeConn {
        NodeConn::new(self.clone(), response_timeout)
    }

    /// A Pub/Sub connection. On a cluster any node hears every `PUBLISH`; the nodes are tried in
    /// turn so a dead one is passed over.
    pub async fn pubsub(&self) -> RedisResult<redis::aio::PubSub> {
        match self {
            Self::Single(client) => client.get_async_pubsub().await,
            Self::Cluster(cluster) => {
                let nodes = cluster.known_nodes();
                let mut last = None;
                for _ in 0..nodes.len() {
                    let addr = cluster.next_node();
                    match cluster.client_for(&addr) {
                        Ok(client) => match client.get_async_pubsub().await {
                            Ok(p) => return Ok(p),
                            Err(e) => last = Some(e),
                        },
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    RedisError::from((ErrorKind::Io, "no cluster node answers"))
                }))
            }
        }
    }

    /// A client for the node at `addr` (`host:port`), with the configured credentials; on a
    /// single server, that server whatever `addr` says.
    pub fn node_client(&self, addr: &str) -> RedisResult<redis::Client> {
        match self {
            Self::Single(client) => Ok(client.clone()),
            Self::Cluster(cluster) => cluster.client_for(addr),
        }
    }
}

impl ClusterTopology {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn known_nodes(&self) -> Vec<String> {
        self.lock().clone()
    }

    /// The known nodes in turn.
    fn next_node(&self) -> String {
        let known = self.lock();
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        known[i % known.len()].clone()
    }

    fn learn(&self, addr: &str) {
        let mut known = self.lock();
        if !known.iter().any(|k| k == addr) {
            known.push(addr.to_owned());
        }
    }

    fn client_for(&self, addr: &str) -> RedisResult<redis::Client> {
        let (host, port) = host_port(addr)?;
        let node = match self.template.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host, port),
        };
        redis::Client::open(self.template.clone().set_addr(node))
    }
}

pub(super) fn manager_config(response_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(response_timeout))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2))
        .set_number_of_retries(3)
}

/// A connection to the bus (see the module's notes). Cheap to clone except [`Conn::Node`], whose
/// clones share nothing but the node they start from.
#[derive(Clone)]
pub enum Conn {
    /// One server.
    Single(ConnectionManager),
    /// A cluster, routed by slot.
    Cluster(ClusterConnection),
    /// One cluster node, for blocking reads.
    Node(Box<NodeConn>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Single(_) => f.write_str("Conn::Single"),
            Self::Cluster(_) => f.write_str("Conn::Cluster"),
            Self::Node(n) => write!(f, "Conn::Node({:?})", n.addr),
        }
    }
}

impl Conn {
    /// Sends `cmd` to the node at `addr` (`host:port`, as [`NodeConn::node`] names it): on a
    /// cluster, over the cluster connection's connection to that node; otherwise as any command
    /// (there is one node).
    pub async fn query_node<T: redis::FromRedisValue>(
        &mut self,
        addr: &str,
        cmd: &Cmd,
    ) -> RedisResult<T> {
        match self {
            Self::Cluster(c) => {
                let (host, port) = host_port(addr)?;
                let value = c
                    .route_command(
                        cmd.clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port }),
                    )
                    .await?;
                Ok(redis::from_redis_value(value)?)
            }
            other => cmd.query_async(other).await,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Node(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) if !pipeline.is_transaction() => {
                split_by_slot(c.clone(), pipeline, offset, count).boxed()
            }
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Node(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Node(_) => 0,
        }
    }
}

/// The slot a command's first key is in, or `None` for a command without keys: those are sent
/// on their own. (The `redis` crate's own router is private; the commands the services pipeline
/// have their key first, or after `numkeys` for scripts, or after `STREAMS`.)
fn slot_route(cmd: &Cmd) -> Option<Route> {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .map(|a| match a {
            redis::Arg::Simple(bytes) => bytes,
            _ => b"".as_slice(),
        })
        .collect();
    let name = args.first()?.to_ascii_uppercase();
    let key = match name.as_slice() {
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
            let numkeys: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            if numkeys == 0 {
                return None;
            }
            args.get(3)?
        }
        b"XREAD" | b"XREADGROUP" => {
            let at = args
                .iter()
                .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))?;
            args.get(at + 1)?
        }
        b"PUBLISH" | b"PING" | b"ECHO" | b"INFO" | b"TIME" | b"CLIENT" | b"SCRIPT" | b"CLUSTER"
        | b"CONFIG" | b"DBSIZE" | b"MULTI" | b"EXEC" => return None,
        _ => args.get(1)?,
    };
    Some(Route::with_key(key, SlotAddr::Master))
}

/// Sends a pipeline's commands grouped by slot (one sub-pipeline per slot, all at once) and
/// returns every command's reply in the pipeline's order, as one connection would.
async fn split_by_slot(
    conn: ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let mut groups: Vec<(Option<Route>, Vec<usize>)> = Vec::new();
    let mut by_route: HashMap<Route, usize> = HashMap::new();
    for (i, cmd) in cmds.iter().enumerate() {
        match slot_route(cmd) {
            Some(route) => {
                let g = *by_route.entry(route).or_insert_with(|| {
                    groups.push((Some(route), Vec::new()));
                    groups.len() - 1
                });
                groups[g].1.push(i);
            }
            None => groups.push((None, vec![i])),
        }
    }
    if groups.len() <= 1 {
        let mut conn = conn;
        return conn.req_packed_commands(pipeline, offset, count).await;
    }
    let sends = groups.iter().map(|(_, indices)| {
        let mut conn = conn.clone();
        let mut part = Pipeline::with_capacity(indices.len());
        for &i in indices {
            part.add_command(cmds[i].clone());
        }
        async move {
            let n = part.len();
            conn.req_packed_commands(&part, 0, n).await
        }
    });
    let replies = join_all(sends).await;
    let mut out = vec![Value::Nil; cmds.len()];
    for ((_, indices), reply) in groups.iter().zip(replies) {
        let values = reply?;
        for (&i, v) in indices.iter().zip(values) {
            out[i] = v;
        }
    }
    Ok(out.into_iter().skip(offset).take(count).collect())
}

/// A connection to the one cluster node that serves a key, for blocking reads: it follows
/// `MOVED` (the slot moved, or a replica was promoted) to the new owner and answers `ASK` (a slot
/// being migrated) on the target for that command, and after a lost connection starts again from
/// the last node, then from every node it knows. Its node's address and `CLIENT ID` say where to
/// send a `CLIENT UNBLOCK`.
pub struct NodeConn {
    topology: Topology,
    response_timeout: Duration,
    addr: Option<String>,
    conn: Option<MultiplexedConnection>,
    client_id: i64,
}

impl Clone for NodeConn {
    fn clone(&self) -> Self {
        Self {
            topology: self.topology.clone(),
            response_timeout: self.response_timeout,
            addr: self.addr.clone(),
            conn: None,
            client_id: -1,
        }
    }
}

/// Redirects followed for one command before giving up.
const MAX_REDIRECTS: usize = 5;

impl NodeConn {
    /// Not connected yet; the first command connects.
    pub fn new(topology: Topology, response_timeout: Duration) -> Self {
        Self {
            topology,
            response_timeout,
            addr: None,
            conn: None,
            client_id: -1,
        }
    }

    /// Connects to the node serving `key` (a cheap `EXISTS` finds it through redirects).
    pub async fn follow(&mut self, key: &str) -> RedisResult<()> {
        let mut probe = redis::cmd("EXISTS");
        probe.arg(key);
        let _: Value = self.send(&probe).await?;
        Ok(())
    }

    /// The node connected to (`host:port`), and this connection's `CLIENT ID` there, once
    /// connected.
    pub fn node(&self) -> Option<(String, i64)> {
        match (&self.addr, &self.conn) {
            (Some(addr), Some(_)) if self.client_id >= 0 => Some((addr.clone(), self.client_id)),
            _ => None,
        }
    }

    fn config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(self.response_timeout))
    }

    async fn connect_to(&self, addr: &str) -> RedisResult<(MultiplexedConnection, i64)> {
        let client = self.topology.node_client(addr)?;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&self.config())
            .await?;
        let id: i64 = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut conn)
            .await?;
        Ok((conn, id))
    }

    /// The connection, made if needed: to the last node first, then to each known node.
    async fn connected(&mut self) -> RedisResult<&mut MultiplexedConnection> {
        if self.conn.is_none() {
            let candidates: Vec<String> = match &self.topology {
                Topology::Single(_) => vec![String::new()],
                Topology::Cluster(c) => self
                    .addr
                    .iter()
                    .cloned()
                    .chain((0..c.known_nodes().len()).map(|_| c.next_node()))
                    .collect(),
            };
            let mut last = None;
            for addr in candidates {
                match self.connect_to(&addr).await {
                    Ok((conn, id)) => {
                        self.addr = Some(addr);
                        self.client_id = id;
                        self.conn = Some(conn);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if self.conn.is_none() {
                return Err(last.unwrap_or_else(|| {
                    RedisError::from((ErrorKind::Io, "no cluster node answers"))
                }));
            }
        }
        self.conn
            .as_mut()
            .ok_or_else(|| RedisError::from((ErrorKind::Io, "not connected")))
    }

    fn forget_connection(&mut self) {
        self.conn = None;
        self.client_id = -1;
    }

    async fn send(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        for _ in 0..MAX_REDIRECTS {
            // A server's error (a redirect among them) comes back as a value.
            let reply = self
                .connected()
                .await?
                .send_packed_command(cmd)
                .await
                .and_then(Value::extract_error);
            let e = match reply {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            match (e.kind(), e.redirect_node()) {
                (ErrorKind::Server(ServerErrorKind::Moved), Some((addr, _))) => {
                    let addr = addr.to_owned();
                    if let Topology::Cluster(c) = &self.topology {
                        c.learn(&addr);
                    }
                    tracing::debug!(node = %addr, "slot moved; following");
                    self.addr = Some(addr);
                    self.forget_connection();
                }
                (ErrorKind::Server(ServerErrorKind::Ask), Some((addr, _))) => {
                    let (mut target, _) = self.connect_to(addr).await?;
                    let mut pipe = redis::pipe();
                    pipe.cmd("ASKING").ignore().add_command(cmd.clone());
                    let mut values: Vec<Value> = pipe.query_async(&mut target).await?;
                    return values
                        .pop()
                        .ok_or_else(|| RedisError::from((ErrorKind::Io, "no reply after ASKING")));
                }
                _ => {
                    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                        self.forget_connection();
                    }
                    return Err(e);
                }
            }
        }
        Err(RedisError::from((
            ErrorKind::Server(ServerErrorKind::Moved),
            "too many redirects",
        )))
    }
}

impl ConnectionLike for NodeConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.send(cmd).boxed()
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let fut: BoxFuture<'a, RedisResult<Vec<Value>>> = async move {
            let reply = self
                .connected()
                .await?
                .send_packed_commands(pipeline, offset, count)
                .await;
            if let Err(e) = &reply
                && (e.is_io_error() || e.is_connection_dropped() || e.is_timeout())
            {
                self.forget_connection();
            }
            reply
        }
        .boxed();
        fut
    }

    fn get_db(&self) -> i64 {
        0
    }
}
