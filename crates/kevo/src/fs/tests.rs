//! Tests of both file systems: MemFs's crash and fault model, and OsFs on a temp dir.

use std::io;
use std::path::{Path, PathBuf};

use super::*;

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

fn content(fs: &dyn Fs, path: &str) -> Option<Vec<u8>> {
    match read_file(fs, Path::new(path), 1 << 30) {
        Ok(data) => Some(data),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => panic!("reading {path}: {e}"),
    }
}

/// A MemFs with `/db` created and a file `/db/<name>` holding `data`, synced and with its
/// name made durable.
fn memfs_with_file(name: &str, data: &[u8]) -> MemFs {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("/db")).unwrap();
    let f = fs.create(&p(&format!("/db/{name}"))).unwrap();
    f.append(data).unwrap();
    f.sync().unwrap();
    fs.sync_dir(Path::new("/db")).unwrap();
    fs
}

mod memfs_crash {
    use super::*;

    #[test]
    fn crash_drops_unsynced_data_but_keeps_synced_data() {
        let fs = memfs_with_file("a", b"durable");
        let f = fs.open_append(&p("/db/a")).unwrap();
        f.append(b"+volatile").unwrap();
        assert_eq!(content(&fs, "/db/a").unwrap(), b"durable+volatile");
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(content(&fs, "/db/a").unwrap(), b"durable");
    }

    #[test]
    fn a_synced_file_whose_name_was_never_made_durable_is_lost() {
        let fs = MemFs::new();
        fs.create_dir_all(Path::new("/db")).unwrap();
        let f = fs.create(&p("/db/new")).unwrap();
        f.append(b"data").unwrap();
        f.sync().unwrap();
        assert_eq!(fs.durable_content(Path::new("/db/new")), None);
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(content(&fs, "/db/new"), None);
        assert_eq!(fs.list(Path::new("/db")).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_rename_not_followed_by_a_directory_sync_can_be_lost() {
        let fs = memfs_with_file("CURRENT", b"old");
        let tmp = fs.create(&p("/db/CURRENT.tmp")).unwrap();
        tmp.append(b"new").unwrap();
        tmp.sync().unwrap();
        fs.rename(&p("/db/CURRENT.tmp"), &p("/db/CURRENT")).unwrap();
        assert_eq!(content(&fs, "/db/CURRENT").unwrap(), b"new");
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(content(&fs, "/db/CURRENT").unwrap(), b"old");
        assert_eq!(content(&fs, "/db/CURRENT.tmp"), None);
    }

    #[test]
    fn a_rename_followed_by_a_directory_sync_survives() {
        let fs = memfs_with_file("CURRENT", b"old");
        write_file_atomic(&fs, Path::new("/db/CURRENT"), b"new").unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(content(&fs, "/db/CURRENT").unwrap(), b"new");
        assert_eq!(
            fs.list(Path::new("/db")).unwrap(),
            vec!["CURRENT".to_string()]
        );
    }

    #[test]
    fn a_removal_not_followed_by_a_directory_sync_comes_back() {
        let fs = memfs_with_file("a", b"x");
        fs.remove(&p("/db/a")).unwrap();
        assert_eq!(content(&fs, "/db/a"), None);
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(content(&fs, "/db/a").unwrap(), b"x");
        fs.remove(&p("/db/a")).unwrap();
        fs.sync_dir(Path::new("/db")).unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(content(&fs, "/db/a"), None);
    }

    #[test]
    fn directory_syncs_make_only_their_own_directory_durable() {
        let fs = MemFs::new();
        fs.create_dir_all(Path::new("/a")).unwrap();
        fs.create_dir_all(Path::new("/b")).unwrap();
        fs.create(&p("/a/x")).unwrap().sync().unwrap();
        fs.create(&p("/b/y")).unwrap().sync().unwrap();
        fs.sync_dir(Path::new("/b")).unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert!(!fs.exists(Path::new("/a/x")).unwrap());
        assert!(fs.exists(Path::new("/b/y")).unwrap());
    }

    #[test]
    fn a_process_crash_keeps_unsynced_data_but_kills_handles_and_locks() {
        let fs = memfs_with_file("a", b"one");
        let lock = fs.lock(Path::new("/db/LOCK")).unwrap();
        let f = fs.open_append(&p("/db/a")).unwrap();
        f.append(b"two").unwrap();
        fs.crash(CrashMode::KeepUnsynced);
        assert_eq!(content(&fs, "/db/a").unwrap(), b"onetwo");
        assert!(
            f.append(b"three").is_err(),
            "a handle from before the crash is dead"
        );
        assert!(f.read_at(&mut [0; 3], 0).is_err());
        let _relock = fs
            .lock(Path::new("/db/LOCK"))
            .expect("the crash released the lock");
        drop(lock); // must not release the new owner's lock
        assert_eq!(
            fs.lock(Path::new("/db/LOCK")).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn random_crash_images_never_touch_synced_bytes_and_cover_every_outcome() {
        let synced: Vec<u8> = (0..6000u32).map(|i| (i % 251) as u8).collect();
        let unsynced = vec![0xAB; 3 * 4096];
        let (mut shortest, mut longest, mut garbled) = (usize::MAX, 0, false);
        for seed in 0..200 {
            let fs = memfs_with_file("wal", &synced);
            let f = fs.open_append(&p("/db/wal")).unwrap();
            f.append(&unsynced).unwrap();
            fs.crash(CrashMode::Random(seed));
            let after = content(&fs, "/db/wal").unwrap();
            assert!(
                after.len() >= synced.len() && after.len() <= synced.len() + unsynced.len(),
                "seed {seed}"
            );
            assert_eq!(
                &after[..synced.len()],
                &synced[..],
                "seed {seed}: synced bytes changed"
            );
            garbled |= after[synced.len()..].iter().any(|&b| b != 0xAB && b != 0);
            shortest = shortest.min(after.len());
            longest = longest.max(after.len());
            // The same seed gives the same image.
            let again = memfs_with_file("wal", &synced);
            again
                .open_append(&p("/db/wal"))
                .unwrap()
                .append(&unsynced)
                .unwrap();
            again.crash(CrashMode::Random(seed));
            assert_eq!(content(&again, "/db/wal").unwrap(), after);
        }
        assert_eq!(shortest, synced.len(), "some crash drops the whole tail");
        assert_eq!(
            longest,
            synced.len() + unsynced.len(),
            "some crash keeps the whole tail"
        );
        assert!(garbled, "some crash garbles an unsynced page");
    }

    #[test]
    fn random_crash_keeps_an_in_order_prefix_of_directory_changes() {
        let mut outcomes = std::collections::BTreeSet::new();
        for seed in 0..100 {
            let fs = MemFs::new();
            fs.create_dir_all(Path::new("/db")).unwrap();
            for name in ["1", "2", "3"] {
                fs.create(&p(&format!("/db/{name}")))
                    .unwrap()
                    .sync()
                    .unwrap();
            }
            fs.crash(CrashMode::Random(seed));
            let names = fs.list(Path::new("/db")).unwrap().join("");
            assert!(
                ["", "1", "12", "123"].contains(&names.as_str()),
                "seed {seed}: {names}"
            );
            outcomes.insert(names);
        }
        assert_eq!(outcomes.len(), 4, "every prefix occurs: {outcomes:?}");
    }
}

mod memfs_faults {
    use super::*;

    fn errno(err: &io::Error) -> Option<i32> {
        err.raw_os_error()
    }

    #[test]
    fn the_nth_operation_fails_with_eio_once() {
        let fs = memfs_with_file("a", b"abc");
        let f = fs.open(&p("/db/a")).unwrap();
        let n = fs.op_count();
        fs.fail_nth(n + 1, Fault::Eio);
        let mut buf = [0; 3];
        f.read_exact_at(&mut buf, 0).expect("op n succeeds");
        let err = f.read_at(&mut buf, 0).expect_err("op n+1 fails");
        assert_eq!(errno(&err), Some(rustix::io::Errno::IO.raw_os_error()));
        assert_eq!(crate::Error::io("read", err).kind(), crate::ErrorKind::Io);
        f.read_exact_at(&mut buf, 0).expect("op n+2 succeeds again");
        assert_eq!(fs.faults_injected(), 1);
    }

    #[test]
    fn enospc_on_matching_operations_until_cleared_and_nothing_is_written() {
        let fs = memfs_with_file("a.wal", b"");
        fs.fail_matching(Fault::Enospc, |op| {
            op.kind == OpKind::Append && op.path.extension().is_some_and(|e| e == "wal")
        });
        let wal = fs.open_append(&p("/db/a.wal")).unwrap();
        let other = fs.create(&p("/db/b.sst")).unwrap();
        for _ in 0..3 {
            let err = wal.append(b"record").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::StorageFull);
            assert_eq!(
                crate::Error::io("append", err).kind(),
                crate::ErrorKind::Resource
            );
        }
        other.append(b"fine").unwrap();
        assert_eq!(wal.len().unwrap(), 0, "a failed append writes nothing");
        fs.clear_faults();
        wal.append(b"record").unwrap();
        assert_eq!(content(&fs, "/db/a.wal").unwrap(), b"record");
    }

    #[test]
    fn a_torn_write_leaves_only_a_prefix_and_reports_failure() {
        let fs = memfs_with_file("a", b"head:");
        let f = fs.open_append(&p("/db/a")).unwrap();
        fs.fail_nth(fs.op_count(), Fault::Torn { keep: 3 });
        assert!(f.append(b"123456").is_err());
        assert_eq!(content(&fs, "/db/a").unwrap(), b"head:123");
        f.sync().unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(
            content(&fs, "/db/a").unwrap(),
            b"head:123",
            "the torn prefix was synced"
        );
    }

    #[test]
    fn halt_fails_everything_until_the_crash() {
        let fs = memfs_with_file("a", b"x");
        fs.fail_nth(fs.op_count(), Fault::Halt);
        assert!(fs.exists(Path::new("/db/a")).is_err());
        assert!(fs.create(&p("/db/b")).is_err());
        assert!(fs.list(Path::new("/db")).is_err());
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.list(Path::new("/db")).unwrap(), vec!["a".to_string()]);
    }

    #[test]
    fn a_failed_sync_under_keep_cached_loses_the_data_even_after_a_later_sync() {
        let fs = memfs_with_file("a", b"durable|");
        let f = fs.open_append(&p("/db/a")).unwrap();
        f.append(b"lost").unwrap();
        fs.fail_nth(fs.op_count(), Fault::Eio);
        assert!(f.sync().is_err());
        assert_eq!(
            content(&fs, "/db/a").unwrap(),
            b"durable|lost",
            "the cache still shows it"
        );
        f.sync().unwrap();
        fs.crash(CrashMode::DropUnsynced);
        // The page was marked clean: its new bytes never reached the medium.
        assert_eq!(content(&fs, "/db/a").unwrap(), b"durable|\0\0\0\0");
    }

    #[test]
    fn a_failed_sync_under_revert_cached_drops_the_data_from_the_cache() {
        let fs = memfs_with_file("a", b"durable|");
        fs.set_sync_failure(SyncFailure::RevertCached);
        let f = fs.open_append(&p("/db/a")).unwrap();
        f.append(b"lost").unwrap();
        fs.fail_nth(fs.op_count(), Fault::Eio);
        assert!(f.sync().is_err());
        assert_eq!(content(&fs, "/db/a").unwrap(), b"durable|");
    }

    #[test]
    fn rewriting_a_lost_page_makes_it_syncable_again() {
        let fs = memfs_with_file("a", b"");
        let f = fs.open_append(&p("/db/a")).unwrap();
        f.append(b"lost").unwrap();
        fs.fail_nth(fs.op_count(), Fault::Eio);
        assert!(f.sync().is_err());
        f.truncate(0).unwrap();
        f.append(b"again").unwrap();
        f.sync().unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(content(&fs, "/db/a").unwrap(), b"again");
    }

    #[test]
    fn read_only_handles_refuse_writes() {
        let fs = memfs_with_file("a", b"x");
        let f = fs.open(&p("/db/a")).unwrap();
        assert!(f.append(b"y").is_err());
        assert!(f.truncate(0).is_err());
        assert_eq!(content(&fs, "/db/a").unwrap(), b"x");
    }

    #[test]
    fn the_trace_records_every_operation_with_its_fault_and_outcome() {
        let fs = memfs_with_file("a", b"x");
        fs.start_trace();
        let start = fs.op_count();
        let f = fs.open_append(&p("/db/a")).unwrap();
        fs.fail_nth(start + 2, Fault::Enospc);
        f.append(b"y").unwrap();
        f.sync().unwrap_err();
        fs.rename(&p("/db/a"), &p("/db/b")).unwrap();
        let trace = fs.take_trace();
        let kinds: Vec<_> = trace
            .iter()
            .map(|t| (t.op.index - start, t.op.kind, t.fault, t.ok))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (0, OpKind::OpenAppend, None, true),
                (1, OpKind::Append, None, true),
                (2, OpKind::Sync, Some(Fault::Enospc), false),
                (3, OpKind::Rename, None, true),
            ]
        );
        assert_eq!(trace[1].op.file_id, trace[2].op.file_id);
        assert_eq!(trace[3].op.to.as_deref(), Some(Path::new("/db/b")));
    }

    #[test]
    fn missing_files_and_directories_are_not_found() {
        let fs = MemFs::new();
        assert_eq!(
            fs.open(&p("/nope")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            fs.create(&p("/no/dir/file")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            fs.list(Path::new("/no")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            fs.remove(&p("/nope")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            fs.rename(&p("/a"), &p("/b")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}

mod osfs {
    use super::*;

    #[test]
    fn files_round_trip_through_the_real_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("000001.sst");
        let f = fs.create(&path).unwrap();
        f.allocate(1 << 16).unwrap();
        f.append(b"hello ").unwrap();
        f.append(b"world").unwrap();
        f.sync().unwrap();
        assert_eq!(
            f.len().unwrap(),
            11,
            "preallocation does not change the length"
        );
        let mut buf = [0; 5];
        f.read_exact_at(&mut buf, 6).unwrap();
        assert_eq!(&buf, b"world");
        f.truncate(5).unwrap();
        assert_eq!(read_file(&fs, &path, 100).unwrap(), b"hello");
        assert_eq!(
            read_file(&fs, &path, 4).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let reader = fs.open(&path).unwrap();
        assert!(reader.append(b"x").is_err(), "read-only handle");
        assert_eq!(
            reader.read_exact_at(&mut [0; 10], 0).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn namespace_operations_work_and_list_is_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        write_file_atomic(&fs, &dir.path().join("CURRENT"), b"MANIFEST-000001\n").unwrap();
        fs.create(&dir.path().join("b")).unwrap();
        fs.create_dir_all(&dir.path().join("sub/deeper")).unwrap();
        assert_eq!(fs.list(dir.path()).unwrap(), ["CURRENT", "b", "sub"]);
        fs.rename(&dir.path().join("b"), &dir.path().join("a"))
            .unwrap();
        fs.remove(&dir.path().join("a")).unwrap();
        fs.sync_dir(dir.path()).unwrap();
        assert!(!fs.exists(&dir.path().join("a")).unwrap());
        assert!(fs.exists(&dir.path().join("CURRENT")).unwrap());
        assert_eq!(
            read_file(&fs, &dir.path().join("CURRENT"), 100).unwrap(),
            b"MANIFEST-000001\n"
        );
    }

    #[test]
    fn the_lock_is_exclusive_within_one_process_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let lock_path = dir.path().join("LOCK");
        let held = fs.lock(&lock_path).unwrap();
        assert_eq!(
            fs.lock(&lock_path).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        // Opening and closing another descriptor on the file must not drop the lock
        // (it would with POSIX fcntl locks).
        drop(std::fs::File::open(&lock_path).unwrap());
        assert_eq!(
            fs.lock(&lock_path).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        drop(held);
        fs.lock(&lock_path).expect("released on drop");
    }

    #[test]
    fn private_files_are_created_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        OsFs::private().create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
