//! The embedded transactional metadata store (redb). It is the source of
//! truth on disk; each subsystem keeps its own in-memory index for reads and
//! writes every state change through one transaction here.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

use redb::{Database, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};

use super::error::{EngineError, Result};

/// Bumped when a record layout changes incompatibly.
pub const SCHEMA_VERSION: u64 = 1;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// The object tables. Keys are object IDs or names; values are JSON records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Meta,
    Images,
    Tags,
    Layers,
    Containers,
    Execs,
    Networks,
    IpAlloc,
    Volumes,
    BuildCache,
    /// Registry blobs known for a layer (diff ID → compressed digests and
    /// where they were seen), for push's existence checks and mounts.
    Distribution,
    /// Managed plugins by ID.
    Plugins,
}

impl Table {
    fn def(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        let name = match self {
            Table::Meta => return META,
            Table::Images => "images",
            Table::Tags => "tags",
            Table::Layers => "layers",
            Table::Containers => "containers",
            Table::Execs => "execs",
            Table::Networks => "networks",
            Table::IpAlloc => "ipalloc",
            Table::Volumes => "volumes",
            Table::BuildCache => "buildcache",
            Table::Distribution => "distribution",
            Table::Plugins => "plugins",
        };
        TableDefinition::new(name)
    }

    const ALL: [Table; 12] = [
        Table::Meta,
        Table::Images,
        Table::Tags,
        Table::Layers,
        Table::Containers,
        Table::Execs,
        Table::Networks,
        Table::IpAlloc,
        Table::Volumes,
        Table::BuildCache,
        Table::Distribution,
        Table::Plugins,
    ];
}

pub struct Store {
    /// None once `close`d, or while a reopen after an I/O error failed.
    db: RwLock<Option<Database>>,
    /// `store.redb`, for opening it again.
    path: PathBuf,
    /// The database must be opened again before its next use (see
    /// `Store::recover`); false once `close`d.
    reopen: AtomicBool,
}

/// A write transaction: every put/delete inside commits together or not at all.
/// The open database, read-locked for the duration of one call.
struct DbGuard<'a>(RwLockReadGuard<'a, Option<Database>>);

impl std::ops::Deref for DbGuard<'_> {
    type Target = Database;
    fn deref(&self) -> &Database {
        // Checked in `Store::db` under the same guard.
        match self.0.as_ref() {
            Some(db) => db,
            None => unreachable!("DbGuard made only for an open store"),
        }
    }
}

pub struct Txn<'a> {
    tx: redb::WriteTransaction,
    _store: &'a Store,
}

impl Store {
    /// Opens (or creates) `store.redb` under `data_root`. redb holds an
    /// exclusive lock on the file, so a second daemon on the same data root
    /// fails here.
    pub fn open(data_root: &Path) -> Result<Self> {
        let path = data_root.join("store.redb");
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => EngineError::Conflict(format!(
                "the data root {} is in use by another daemon",
                data_root.display()
            )),
            other => EngineError::Internal(format!("opening {}: {other}", path.display())),
        })?;
        let store = Self {
            db: RwLock::new(Some(db)),
            path,
            reopen: AtomicBool::new(false),
        };
        store.init_schema()?;
        Ok(store)
    }

    fn db(&self) -> Result<DbGuard<'_>> {
        if self.reopen.load(Ordering::Acquire) {
            self.reopen_now();
        }
        let g = self.db.read().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            return Err(EngineError::internal("the metadata store is closed"));
        }
        Ok(DbGuard(g))
    }

    /// After a failed write. Once an I/O error happened (a full disk), redb
    /// refuses every later write (`PreviousIo`) until the database is
    /// opened again; a daemon that met a full disk must write again once
    /// there is room, so the database is opened again now (redb repairs
    /// it, as after a crash: the failed transaction was never committed),
    /// or at the next use if that fails too.
    fn recover(&self) {
        if self.poisoned() {
            self.reopen.store(true, Ordering::Release);
            self.reopen_now();
        }
    }

    fn poisoned(&self) -> bool {
        let g = self.db.read().unwrap_or_else(|p| p.into_inner());
        g.as_ref().is_some_and(|db| {
            matches!(
                db.begin_write(),
                Err(redb::TransactionError::Storage(
                    redb::StorageError::PreviousIo
                ))
            )
        })
    }

    fn reopen_now(&self) {
        let mut g = self.db.write().unwrap_or_else(|p| p.into_inner());
        // Another caller may have done it, or `close` called it off.
        if !self.reopen.load(Ordering::Acquire) {
            return;
        }
        // The old handle goes first: it holds the file's lock.
        drop(g.take());
        match Database::create(&self.path) {
            Ok(db) => {
                *g = Some(db);
                self.reopen.store(false, Ordering::Release);
                tracing::warn!("the metadata store was opened again after an I/O error");
            }
            Err(e) => tracing::warn!("opening the metadata store again: {e}"),
        }
    }

    /// `r`, after `recover` if it failed.
    fn recovering<R>(&self, r: Result<R>) -> Result<R> {
        if r.is_err() {
            self.recover();
        }
        r
    }

    /// Closes the database at a clean shutdown (after the server stopped):
    /// redb then records its allocator state and marks the file clean, so
    /// the next start opens it without a repair (which costs four
    /// `fdatasync`s and a rewrite of the allocator region before `/_ping`
    /// is answered). Waits for a write transaction in flight; any store
    /// call after this fails. A daemon that is killed never gets here and
    /// the next start repairs, as before.
    pub fn close(&self) {
        let mut g = self.db.write().unwrap_or_else(|p| p.into_inner());
        self.reopen.store(false, Ordering::Release);
        drop(g.take());
    }

    fn init_schema(&self) -> Result<()> {
        // A store that has every table and a schema version this daemon
        // understands needs no write (a durable commit is a disk flush on
        // every start, before `/_ping` is answered).
        if self.schema_complete()? {
            return Ok(());
        }
        let tx = self.db()?.begin_write()?;
        {
            for t in Table::ALL {
                tx.open_table(t.def())?;
            }
            let mut meta = tx.open_table(META)?;
            let existing = meta
                .get("schema_version")?
                .map(|v| serde_json::from_slice::<u64>(v.value()))
                .transpose()?;
            match existing {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(EngineError::internal(format!(
                        "metadata store schema {v} is newer than this berthd understands ({SCHEMA_VERSION})"
                    )))
                }
                Some(_) => {}
                None => {
                    let v = serde_json::to_vec(&SCHEMA_VERSION)?;
                    meta.insert("schema_version", v.as_slice())?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every table exists and the schema version is known and not newer
    /// than this daemon's (a newer one is refused by `init_schema`).
    fn schema_complete(&self) -> Result<bool> {
        let tx = self.db()?.begin_read()?;
        for t in Table::ALL {
            match tx.open_table(t.def()) {
                Ok(_) => {}
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        let meta = tx.open_table(META)?;
        let Some(v) = meta.get("schema_version")? else {
            return Ok(false);
        };
        let v: u64 = serde_json::from_slice(v.value())?;
        Ok(v <= SCHEMA_VERSION)
    }

    pub fn schema_version(&self) -> Result<u64> {
        Ok(self.get(Table::Meta, "schema_version")?.unwrap_or(0))
    }

    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(table.def())?;
        let out = match t.get(key)? {
            Some(v) => Some(serde_json::from_slice(v.value())?),
            None => None,
        };
        Ok(out)
    }

    /// Every record of a table, for building the in-memory index at start-up.
    pub fn load_all<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(table.def())?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            match serde_json::from_slice(v.value()) {
                Ok(rec) => out.push((k.value().to_string(), rec)),
                Err(e) => {
                    tracing::warn!(table = ?table, key = k.value(), error = %e, "skipping unreadable record")
                }
            }
        }
        Ok(out)
    }

    /// Runs `f` in one write transaction and commits it durably.
    pub fn write<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> Result<R>) -> Result<R> {
        let r = self.write_once(f);
        self.recovering(r)
    }

    fn write_once<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> Result<R>) -> Result<R> {
        let mut txn = Txn {
            tx: self.db()?.begin_write()?,
            _store: self,
        };
        let r = f(&mut txn)?;
        txn.tx.commit()?;
        Ok(r)
    }

    pub fn put<T: Serialize>(&self, table: Table, key: &str, value: &T) -> Result<()> {
        self.write(|t| t.put(table, key, value))
    }

    pub fn delete(&self, table: Table, key: &str) -> Result<()> {
        self.write(|t| t.delete(table, key))
    }

    /// `delete` on a disk that may be full: redb's copy-on-write delete
    /// needs free pages, so when its commit fails for want of space,
    /// `make_room` gives some back and the delete is tried once more.
    pub fn delete_making_room(
        &self,
        table: Table,
        key: &str,
        make_room: impl FnOnce(),
    ) -> Result<()> {
        let tried = delete_typed(&*self.db()?, table, key);
        match tried.map_err(|e| *e) {
            Err(redb::Error::Io(e)) if e.raw_os_error() == Some(libc::ENOSPC) => {
                self.recover();
                make_room();
                self.delete(table, key)
            }
            r => self.recovering(r.map_err(EngineError::from)),
        }
    }

    /// Writes without waiting for the disk: the record is persisted by the
    /// next durable commit, and lost if the daemon dies first. Only for
    /// records a durable commit is about to follow (or whose loss in a
    /// crash is undone at start anyway).
    pub fn put_lazily<T: Serialize>(&self, table: Table, key: &str, value: &T) -> Result<()> {
        let r = self.put_lazily_once(table, key, value);
        self.recovering(r)
    }

    fn put_lazily_once<T: Serialize>(&self, table: Table, key: &str, value: &T) -> Result<()> {
        let mut tx = self.db()?.begin_write()?;
        tx.set_durability(redb::Durability::None);
        {
            let mut t = tx.open_table(table.def())?;
            let v = serde_json::to_vec(value)?;
            t.insert(key, v.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes without waiting for the disk: the deletion is persisted by
    /// the next durable commit, and lost if the daemon dies first. Only for
    /// records whose return after a crash is undone at start anyway.
    pub fn delete_lazily(&self, table: Table, key: &str) -> Result<()> {
        let r = self.delete_lazily_once(table, key);
        self.recovering(r)
    }

    fn delete_lazily_once(&self, table: Table, key: &str) -> Result<()> {
        let mut tx = self.db()?.begin_write()?;
        tx.set_durability(redb::Durability::None);
        {
            let mut t = tx.open_table(table.def())?;
            t.remove(key)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// A durable delete whose error keeps redb's type (to tell a full disk).
fn delete_typed(
    db: &Database,
    table: Table,
    key: &str,
) -> std::result::Result<(), Box<redb::Error>> {
    fn boxed(e: impl Into<redb::Error>) -> Box<redb::Error> {
        Box::new(e.into())
    }
    let tx = db.begin_write().map_err(boxed)?;
    tx.open_table(table.def())
        .map_err(boxed)?
        .remove(key)
        .map_err(boxed)?;
    tx.commit().map_err(boxed)
}

impl Txn<'_> {
    pub fn put<T: Serialize>(&mut self, table: Table, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)?;
        let mut t = self.tx.open_table(table.def())?;
        t.insert(key, bytes.as_slice())?;
        Ok(())
    }

    pub fn delete(&mut self, table: Table, key: &str) -> Result<()> {
        let mut t = self.tx.open_table(table.def())?;
        t.remove(key)?;
        Ok(())
    }

    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>> {
        let t = self.tx.open_table(table.def())?;
        let out = match t.get(key)? {
            Some(v) => Some(serde_json::from_slice(v.value())?),
            None => None,
        };
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small tmpfs, unmounted on drop; None where mounting is not allowed.
    struct SmallFs(tempfile::TempDir);

    impl SmallFs {
        fn mount(size: &str) -> Option<Self> {
            let d = tempfile::tempdir().ok()?;
            let ok = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(d.path())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            ok.then_some(SmallFs(d))
        }
    }

    impl Drop for SmallFs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg(self.0.path())
                .status();
        }
    }

    /// A store on a fresh 2 MiB tmpfs; None (the test skipped) where
    /// mounting is not allowed.
    fn small_store() -> Option<(SmallFs, Store)> {
        let Some(fs) = SmallFs::mount("2m") else {
            eprintln!("skipped: cannot mount a tmpfs (not root)");
            return None;
        };
        let s = Store::open(fs.0.path()).unwrap();
        Some((fs, s))
    }

    /// Takes the rest of the disk with a file, then what redb has free
    /// inside its own file with records; returns the file and the first
    /// write that failed.
    fn fill(fs: &SmallFs, s: &Store) -> (std::path::PathBuf, Option<EngineError>) {
        let filler = fs.0.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![7u8; 64 << 10];
        while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
        drop(f);
        let big = "x".repeat(32 << 10);
        let failed = (0..256).find_map(|i| s.put(Table::Volumes, &format!("v{i}"), &big).err());
        (filler, failed)
    }

    #[test]
    fn a_full_disk_fails_writes_until_there_is_room_again() {
        let Some((fs, s)) = small_store() else {
            return;
        };
        s.put(Table::Volumes, "kept", &"before".to_string())
            .unwrap();
        let (filler, failed) = fill(&fs, &s);
        let e = failed.expect("a full disk fails a write");
        assert!(e.to_string().contains("No space left"), "{e}");
        // Room again: writes work without a restart, and nothing
        // committed before is lost.
        std::fs::remove_file(&filler).unwrap();
        s.put(Table::Volumes, "after", &"room".to_string())
            .expect("a write once there is room");
        assert_eq!(
            s.get::<String>(Table::Volumes, "kept").unwrap(),
            Some("before".to_string())
        );
        assert_eq!(
            s.get::<String>(Table::Volumes, "after").unwrap(),
            Some("room".to_string())
        );
        s.close();
    }

    #[test]
    fn a_delete_on_a_full_disk_makes_room_first() {
        let Some((fs, s)) = small_store() else {
            return;
        };
        s.put(Table::Containers, "c", &"rec".to_string()).unwrap();
        let (filler, _) = fill(&fs, &s);
        let mut called = false;
        s.delete_making_room(Table::Containers, "c", || {
            called = true;
            let _ = std::fs::remove_file(&filler);
        })
        .expect("the delete succeeds once room is made");
        assert!(called, "the disk was full, so room was made");
        assert_eq!(s.get::<String>(Table::Containers, "c").unwrap(), None);
        s.close();
    }

    #[test]
    fn round_trips_and_is_transactional() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        s.put(Table::Volumes, "a", &"one".to_string()).unwrap();
        // A failing transaction leaves nothing behind.
        let r: Result<()> = s.write(|t| {
            t.put(Table::Volumes, "b", &"two".to_string())?;
            Err(EngineError::internal("boom"))
        });
        assert!(r.is_err());
        let all: Vec<(String, String)> = s.load_all(Table::Volumes).unwrap();
        assert_eq!(all, vec![("a".to_string(), "one".to_string())]);
        drop(s);
        let s = Store::open(d.path()).unwrap();
        assert_eq!(
            s.get::<String>(Table::Volumes, "a").unwrap().as_deref(),
            Some("one")
        );
    }

    #[test]
    fn a_lazy_delete_is_seen_at_once_and_kept_by_the_next_durable_commit() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        s.put(Table::Containers, "gone", &"x".to_string()).unwrap();
        s.delete_lazily(Table::Containers, "gone").unwrap();
        assert!(s
            .get::<String>(Table::Containers, "gone")
            .unwrap()
            .is_none());
        s.put(Table::Containers, "kept", &"y".to_string()).unwrap();
        drop(s);
        let s = Store::open(d.path()).unwrap();
        let all: Vec<(String, String)> = s.load_all(Table::Containers).unwrap();
        assert_eq!(all, vec![("kept".to_string(), "y".to_string())]);
    }

    /// redb's "recovery required" flag: bit 2 of the byte after its
    /// 9-byte magic number (redb's file format, `header.rs`).
    fn needs_repair(data_root: &Path) -> bool {
        let head = std::fs::read(data_root.join("store.redb")).unwrap();
        head[9] & 2 != 0
    }

    #[test]
    fn a_closed_store_is_clean_keeps_its_writes_and_refuses_more() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        s.put(Table::Containers, "c1", &"x".to_string()).unwrap();
        // Open: a crash now would need a repair at the next open.
        assert!(needs_repair(d.path()));
        s.close();
        assert!(!needs_repair(d.path()), "close marks the file clean");
        assert!(s.put(Table::Containers, "c2", &"y".to_string()).is_err());
        assert!(s.get::<String>(Table::Containers, "c1").is_err());
        // The file lock went with it: a new open succeeds while `s` lives.
        let s2 = Store::open(d.path()).unwrap();
        let all: Vec<(String, String)> = s2.load_all(Table::Containers).unwrap();
        assert_eq!(all, vec![("c1".to_string(), "x".to_string())]);
        s.close();
    }

    #[test]
    fn a_lazy_put_is_seen_at_once_and_kept_by_the_next_durable_commit() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        s.put(Table::Containers, "other", &"x".to_string()).unwrap();
        s.put_lazily(Table::Containers, "exited", &"y".to_string())
            .unwrap();
        assert_eq!(
            s.get::<String>(Table::Containers, "exited")
                .unwrap()
                .as_deref(),
            Some("y")
        );
        // As a forced removal: the durable delete follows the lazy write.
        s.delete(Table::Containers, "other").unwrap();
        drop(s);
        let s = Store::open(d.path()).unwrap();
        let all: Vec<(String, String)> = s.load_all(Table::Containers).unwrap();
        assert_eq!(all, vec![("exited".to_string(), "y".to_string())]);
    }

    #[test]
    fn a_second_open_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let _s = Store::open(d.path()).unwrap();
        assert!(matches!(
            Store::open(d.path()),
            Err(EngineError::Conflict(_))
        ));
    }

    #[test]
    fn newer_schema_is_refused() {
        let d = tempfile::tempdir().unwrap();
        {
            let s = Store::open(d.path()).unwrap();
            s.put(Table::Meta, "schema_version", &(SCHEMA_VERSION + 1))
                .unwrap();
        }
        assert!(Store::open(d.path()).is_err());
    }
}
