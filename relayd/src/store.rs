//! The state store: calls on disk, so a restart (an upgrade, a crash) keeps them.
//!
//! One redb file, `relayd-state.redb`, in the state directory (mode 0600: it holds SRTP
//! master keys and the DTLS private key). Table `calls`: call-id → the call's record
//! (control::persist::CallRecord); table `meta`: the process's DTLS identity and the time
//! of the writer's last pass.
//!
//! The writer is a thread of its own: every `state-interval` it takes the engine lock
//! for a few calls at a time, exports them (the data plane's flow state included), and
//! keeps the ones whose record changed in a way that matters
//! (`CallRecord::fingerprint_bytes`); then, without the lock, it writes them and removes
//! the records of calls that ended, in one transaction. Nothing of this is on the packet
//! path, and the engine lock is held only while calls are copied out.
//!
//! At start, [`restore`] reads every record back into the engine before relayd serves:
//! each call on its old ports with its old keys and latches; a record that cannot be
//! restored is logged with its reason and dropped (the others go on).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use control::engine::Engine;
use control::persist::{CallRecord, IdentityRecord, StoreInfo};

const CALLS: TableDefinition<&str, &[u8]> = TableDefinition::new("calls");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The process's DTLS identity (control::persist::IdentityRecord).
const IDENTITY: &str = "identity";
/// Wall clock (ms, decimal) of the writer's last pass: every call in the store existed then.
const ALIVE: &str = "alive-unix-ms";
/// The file in the state directory.
pub const FILE: &str = "relayd-state.redb";
/// Calls exported per hold of the engine lock.
const BATCH: usize = 64;

pub struct Store {
    db: redb::Database,
    pub path: PathBuf,
}

/// What the store holds, read back.
pub struct Loaded {
    /// (call-id, record bytes)
    pub calls: Vec<(String, Vec<u8>)>,
    /// The process's DTLS identity (IdentityRecord bytes).
    pub identity: Option<Vec<u8>>,
    /// The writer's last pass (ms since the epoch).
    pub alive_unix_ms: Option<u64>,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Store {
    /// Open (or create) the store in `dir`: the directory 0700 when relayd makes it, the
    /// file 0600 whatever it was.
    pub fn open(dir: &Path) -> Result<Store, String> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        let what = |e: std::io::Error| format!("state-dir {}: {e}", dir.display());
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(what)?;
        let path = dir.join(FILE);
        // create it with the mode it must have before redb writes a key into it
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path).map_err(what)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(what)?;
        let db = redb::Database::create(&path).map_err(|e| format!("state store {}: {e}", path.display()))?;
        let w = db.begin_write().map_err(|e| e.to_string())?;
        w.open_table(CALLS).map_err(|e| e.to_string())?;
        w.open_table(META).map_err(|e| e.to_string())?;
        w.commit().map_err(|e| e.to_string())?;
        Ok(Store { db, path })
    }

    /// Every record, the stored DTLS identity and the last pass's time.
    pub fn load(&self) -> Result<Loaded, String> {
        let r = self.db.begin_read().map_err(|e| e.to_string())?;
        let calls = r.open_table(CALLS).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for row in calls.iter().map_err(|e| e.to_string())? {
            let (k, v) = row.map_err(|e| e.to_string())?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        let meta = r.open_table(META).map_err(|e| e.to_string())?;
        let identity = meta.get(IDENTITY).map_err(|e| e.to_string())?.map(|v| v.value().to_vec());
        let alive = meta
            .get(ALIVE)
            .map_err(|e| e.to_string())?
            .and_then(|v| std::str::from_utf8(v.value()).ok().and_then(|s| s.parse().ok()));
        Ok(Loaded { calls: out, identity, alive_unix_ms: alive })
    }

    /// One transaction: these records written, those removed, the identity if it changed,
    /// the pass's time. Returns the number of records the store then holds.
    pub fn write(&self, put: &[(String, Vec<u8>)], remove: &[String], identity: Option<&[u8]>) -> Result<u64, String> {
        use redb::ReadableTableMetadata;
        let w = self.db.begin_write().map_err(|e| e.to_string())?;
        let n = {
            let mut calls = w.open_table(CALLS).map_err(|e| e.to_string())?;
            for (k, v) in put {
                calls.insert(k.as_str(), v.as_slice()).map_err(|e| e.to_string())?;
            }
            for k in remove {
                calls.remove(k.as_str()).map_err(|e| e.to_string())?;
            }
            let mut meta = w.open_table(META).map_err(|e| e.to_string())?;
            if let Some(i) = identity {
                meta.insert(IDENTITY, i).map_err(|e| e.to_string())?;
            }
            meta.insert(ALIVE, unix_ms().to_string().as_bytes()).map_err(|e| e.to_string())?;
            calls.len().map_err(|e| e.to_string())?
        };
        w.commit().map_err(|e| e.to_string())?;
        Ok(n)
    }
}

/// How long a restart waits for ports the old process's sockets still hold.
const PORT_WAIT: Duration = Duration::from_secs(3);

/// Restore the store's DTLS identity (unless it is due for renewal) and every call into
/// the engine. Returns (restored, refused); each refusal is logged with its reason.
pub fn restore(engine: &mut Engine, store: &Store, now_unix: u64) -> Result<(usize, usize), String> {
    let Loaded { calls: records, identity, alive_unix_ms: alive } = store.load()?;
    if let Some(b) = identity {
        match IdentityRecord::from_bytes(&b).and_then(|r| r.identity()) {
            Ok(id) if !crate::dtls_identity::needs_renewal(&id, now_unix) => {
                log::info!("DTLS certificate {} restored from the state store", id.fingerprint);
                engine.set_dtls_identity(Arc::new(id));
            }
            Ok(_) => log::info!("the stored DTLS certificate is due for renewal: a new one is used"),
            Err(e) => log::warn!("state store: the stored DTLS certificate is unusable ({e}): a new one is used"),
        }
    }
    let (mut ok, mut failed) = (0, 0);
    // a call whose ports the old process's sockets still hold (the kernel frees them a
    // moment after it exited) is tried again, for up to PORT_WAIT
    let deadline = Instant::now() + PORT_WAIT;
    let mut pending = records;
    while !pending.is_empty() {
        let now_ms = engine.dataplane().now_ms();
        let mut again = Vec::new();
        for (id, bytes) in pending {
            let res = CallRecord::from_bytes(&bytes).and_then(|mut r| {
                if r.call.id != id {
                    return Err(format!("the record is of call {:?}", r.call.id));
                }
                assume_media_until(&mut r, alive);
                engine.restore_call(r, now_ms)
            });
            match res {
                Ok(()) => ok += 1,
                Err(why) if why.contains(control::interface::PORT_TAKEN) && Instant::now() < deadline => {
                    again.push((id, bytes))
                }
                Err(why) => {
                    failed += 1;
                    log::warn!("state store: call {:?} not restored: {why}", control::ng::log_text(id.as_bytes(), 80));
                }
            }
        }
        if !again.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
        pending = again;
    }
    Ok((ok, failed))
}

/// A record is rewritten only when it changes in a way that matters, so its idle times
/// can be older than the writer's last pass (`alive`), when the call still existed: media
/// that was flowing when the record was taken is taken to have flowed until then (a
/// restored call may outlive its --timeout by that much, never end early).
fn assume_media_until(r: &mut CallRecord, alive: Option<u64>) {
    let Some(alive) = alive else { return };
    let extra = alive.saturating_sub(r.taken_unix_ms);
    for (_, f) in &mut r.flows {
        f.idle_ms = f.idle_ms.map(|i| i.saturating_sub(extra));
    }
}

fn digest(b: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    b.hash(&mut h);
    h.finish()
}

/// The writer thread's state: what the store holds, by call-id, as a digest of what
/// mattered in each record when it was written.
pub struct Writer {
    store: Store,
    engine: Arc<Mutex<Engine>>,
    written: HashMap<String, u64>,
    identity: Option<Vec<u8>>,
    info: StoreInfo,
}

impl Writer {
    /// `held`: the call-ids in the store at start (all rewritten by the first pass, the
    /// ones not restored removed by it).
    pub fn new(store: Store, engine: Arc<Mutex<Engine>>, held: Vec<String>, info: StoreInfo) -> Writer {
        let written = held.into_iter().map(|k| (k, 0)).collect();
        Writer { store, engine, written, identity: None, info }
    }

    /// One pass: export what changed (the engine lock a batch at a time), write it and
    /// remove what ended (without the lock). `exact`: write every call as it is now,
    /// whatever its fingerprint (the last pass of a stopping relay: a clean restart
    /// resumes every SRTP stream from its exact indices, not from a coarsened one).
    pub fn pass(&mut self, exact: bool) {
        let (ids, identity) = {
            let e = control::lock(&self.engine);
            (e.call_ids(), e.dtls_identity().map(|i| IdentityRecord::of(i).to_bytes()))
        };
        let mut put = Vec::new();
        let mut digests = Vec::new();
        for chunk in ids.chunks(BATCH) {
            let e = control::lock(&self.engine);
            for id in chunk {
                let Some(r) = e.export_call(id) else { continue };
                let d = digest(&r.fingerprint_bytes());
                if exact || self.written.get(id) != Some(&d) {
                    put.push((id.clone(), r.to_bytes()));
                    digests.push(d);
                }
            }
        }
        let live: std::collections::HashSet<&String> = ids.iter().collect();
        let remove: Vec<String> = self.written.keys().filter(|k| !live.contains(k)).cloned().collect();
        let new_identity = identity.filter(|i| self.identity.as_ref() != Some(i));
        match self.store.write(&put, &remove, new_identity.as_deref()) {
            Ok(n) => {
                for ((id, _), d) in put.into_iter().zip(digests) {
                    self.written.insert(id, d);
                }
                for k in &remove {
                    self.written.remove(k);
                }
                if new_identity.is_some() {
                    self.identity = new_identity;
                }
                self.info.records = n as usize;
                self.info.last_write_unix = Some(unix_ms() / 1000);
                self.info.last_error = None;
            }
            Err(e) => {
                if self.info.last_error.as_deref() != Some(e.as_str()) {
                    log::error!(
                        "state store {}: write failed: {e} (calls go on; a restart now would lose changes)",
                        self.store.path.display()
                    );
                }
                self.info.last_error = Some(e);
            }
        }
        control::lock(&self.engine).store = Some(self.info.clone());
    }

    /// Pass every `interval` until `stop`, then once more (a SIGTERM'd relay writes its
    /// latest state before it goes).
    pub fn run(mut self, interval: Duration, stop: &AtomicBool) {
        let mut next = Instant::now() + interval;
        loop {
            while Instant::now() < next && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20).min(interval));
            }
            let stopping = stop.load(Ordering::SeqCst);
            self.pass(stopping);
            if stopping {
                return;
            }
            next = Instant::now() + interval;
        }
    }
}

/// Open the store, restore its calls into the engine and return the writer to run;
/// None when the configuration has no store. An error only for a directory the operator
/// named; the default one failing is a warning (relayd then runs without a store).
pub fn start(
    cfg: &crate::config::Config,
    engine: &mut Engine,
    now_unix: u64,
) -> Result<Option<(Store, StoreInfo, Vec<String>)>, String> {
    let Some(dir) = &cfg.state_dir else {
        log::info!("state store off (--no-state): a restart drops every call");
        return Ok(None);
    };
    let store = match Store::open(dir) {
        Ok(s) => s,
        Err(e) if !cfg.state_dir_explicit => {
            log::warn!("{e}; running without a state store: a restart drops every call (--state-dir, --no-state)");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let held: Vec<String> = store.load()?.calls.into_iter().map(|(k, _)| k).collect();
    let (restored, failed) = restore(engine, &store, now_unix)?;
    log::info!(
        "state store {}: {restored} call(s) restored, {failed} refused (each logged above)",
        store.path.display()
    );
    let info = StoreInfo {
        dir: dir.display().to_string(),
        records: held.len(),
        restored,
        restore_failed: failed,
        ..Default::default()
    };
    engine.store = Some(info.clone());
    Ok(Some((store, info, held)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("relayd-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn records_written_removed_and_read_back_in_a_0600_file() {
        let d = dir("rw");
        let s = Store::open(&d.join("sub")).unwrap();
        let mode = std::fs::metadata(&s.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(d.join("sub")).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
        let put = vec![("a".to_string(), b"1".to_vec()), ("b".to_string(), b"2".to_vec())];
        assert_eq!(s.write(&put, &[], Some(b"id")).unwrap(), 2);
        assert_eq!(s.write(&[("a".into(), b"3".to_vec())], &["b".into()], None).unwrap(), 1);
        drop(s);
        // a file someone made readable is made 0600 again
        std::fs::set_permissions(d.join("sub").join(FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
        let s = Store::open(&d.join("sub")).unwrap();
        assert_eq!(std::fs::metadata(&s.path).unwrap().permissions().mode() & 0o777, 0o600);
        let l = s.load().unwrap();
        assert_eq!(l.calls, vec![("a".to_string(), b"3".to_vec())]);
        assert_eq!(l.identity.as_deref(), Some(&b"id"[..]));
        assert!(l.alive_unix_ms.is_some_and(|t| t > 1_700_000_000_000));
        // a second opener of the same file is refused (another relayd on the directory)
        assert!(Store::open(&d.join("sub")).is_err());
        drop(s);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn media_is_assumed_to_flow_until_the_last_pass() {
        let mut e = Engine::new(Default::default(), Arc::new(rules::dataplane::MemoryDataPlane::default()));
        e.calls.insert("c".into(), control::call::Call::new("c", 0, 0, 1));
        let mut r = e.export_call("c").unwrap();
        let s: std::net::SocketAddr = "127.0.0.1:30000".parse().unwrap();
        r.flows.push((s, rules::state::FlowState { idle_ms: Some(5_000), ..Default::default() }));
        r.taken_unix_ms = 1_000_000;
        assume_media_until(&mut r, Some(1_003_000));
        assert_eq!(r.flows[0].1.idle_ms, Some(2_000));
        assume_media_until(&mut r, Some(2_000_000));
        assert_eq!(r.flows[0].1.idle_ms, Some(0));
    }
}
