use std::sync::{Arc, Barrier};

use super::*;

/// An empty cache in a temp folder, and a key.
fn fresh() -> (tempfile::TempDir, ModuleCache, String) {
    let root = tempfile::tempdir().expect("tempdir");
    let cache = ModuleCache::new(root.path(), "eng-1");
    (root, cache, content_hash(b"module"))
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn contents(mut file: File) -> Vec<u8> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).expect("read");
    bytes
}

#[test]
fn test_store_makes_one_entry_dir_with_its_digest_and_opens_it_verified() {
    let (_root, cache, key) = fresh();
    assert!(cache.open_verified(&key).is_none());
    let stored = cache.store(&key, b"compiled").expect("store");
    assert_eq!(contents(stored), b"compiled");
    assert_eq!(names(cache.dir()), [format!("{key}.d")]);
    assert_eq!(
        names(&cache.entry_dir(&key)),
        [ARTIFACT_FILE.to_string(), DIGEST_FILE.to_string()]
    );
    assert_eq!(
        std::fs::read_to_string(cache.digest_path(&key)).expect("digest"),
        content_hash(b"compiled")
    );
    assert_eq!(
        contents(cache.open_verified(&key).expect("entry")),
        b"compiled"
    );
    cache.evict(&key);
    assert!(names(cache.dir()).is_empty());
    assert!(cache.open_verified(&key).is_none());
}

#[test]
fn test_corrupted_body_is_evicted_never_returned() {
    let (_root, cache, key) = fresh();
    cache.store(&key, b"compiled code").expect("store");
    // One byte flipped in place, same length: only the digest can tell.
    let mut body = std::fs::read(cache.artifact_path(&key)).expect("read");
    body[3] ^= 0x01;
    std::fs::write(cache.artifact_path(&key), &body).expect("corrupt");
    assert!(cache.open_verified(&key).is_none());
    assert!(
        names(cache.dir()).is_empty(),
        "evicted whole, nothing left aside: {:?}",
        names(cache.dir())
    );
    // Rebuilt by the next store.
    let stored = cache.store(&key, b"compiled code").expect("store");
    assert_eq!(contents(stored), b"compiled code");
}

#[test]
fn test_missing_digest_or_artifact_is_no_entry() {
    let (root, cache, key) = fresh();
    cache.store(&key, b"compiled").expect("store");
    std::fs::remove_file(cache.digest_path(&key)).expect("digest");
    assert!(cache.open_verified(&key).is_none());
    assert!(!cache.entry_dir(&key).exists());

    cache.store(&key, b"compiled").expect("store");
    std::fs::remove_file(cache.artifact_path(&key)).expect("artifact");
    assert!(cache.open_verified(&key).is_none());
    assert!(!cache.entry_dir(&key).exists());

    // An artifact that is a link to elsewhere is not followed.
    cache.store(&key, b"compiled").expect("store");
    let elsewhere = root.path().join("elsewhere");
    std::fs::write(&elsewhere, b"compiled").expect("write");
    std::fs::remove_file(cache.artifact_path(&key)).expect("artifact");
    std::os::unix::fs::symlink(&elsewhere, cache.artifact_path(&key)).expect("link");
    assert!(cache.open_verified(&key).is_none());
}

#[test]
fn test_half_written_temp_dir_is_ignored_then_swept_when_stale() {
    let (_root, cache, key) = fresh();
    std::fs::create_dir_all(cache.dir()).expect("dir");
    // What a writer killed before writing the digest leaves.
    let dead = cache.dir().join(format!(".tmp-1-0-0-{key}"));
    std::fs::create_dir(&dead).expect("temp");
    std::fs::write(dead.join(ARTIFACT_FILE), b"half").expect("artifact");
    assert!(cache.open_verified(&key).is_none());
    // What the layout before entry directories left.
    let legacy = cache.dir().join(format!("{key}.bin"));
    std::fs::write(&legacy, b"old").expect("legacy");

    let stored = cache.store(&key, b"whole").expect("store");
    assert_eq!(contents(stored), b"whole");
    // Young: it may be a live writer's, so it stays.
    assert!(dead.exists());
    let old = std::time::SystemTime::now() - STALE_AGE - Duration::from_secs(60);
    for path in [&dead, &legacy] {
        File::open(path)
            .and_then(|file| file.set_modified(old))
            .expect("age it");
    }
    cache
        .store(&content_hash(b"other"), b"other")
        .expect("store");
    assert!(!dead.exists(), "stale temp dir swept on store");
    assert!(!legacy.exists(), "old layout swept on store");
    assert_eq!(
        contents(cache.open_verified(&key).expect("entry")),
        b"whole"
    );
}

#[test]
fn test_concurrent_stores_of_one_key_all_get_the_one_verified_entry() {
    let (_root, cache, key) = fresh();
    const WRITERS: usize = 4;
    let built = Arc::new(Barrier::new(WRITERS));
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let (cache, key, built) = (cache.clone(), key.clone(), built.clone());
            std::thread::spawn(move || {
                let file = cache
                    .store_with(&key, |path: &Path| -> std::io::Result<()> {
                        // Different bytes per writer (a compiler need not
                        // be deterministic); all wait until every temp
                        // entry is whole, so that they race on the rename.
                        std::fs::write(path, format!("artifact of writer {i}"))?;
                        built.wait();
                        Ok(())
                    })
                    .expect("store");
                contents(file)
            })
        })
        .collect();
    let results: Vec<Vec<u8>> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert!(
        results.iter().all(|r| *r == results[0]),
        "every writer loads the winner's artifact: {results:?}"
    );
    assert_eq!(
        names(cache.dir()),
        [format!("{key}.d")],
        "one entry, losers' temp dirs gone"
    );
    assert_eq!(
        contents(cache.open_verified(&key).expect("entry")),
        results[0]
    );
}

#[test]
fn test_loser_replaces_a_bad_winner() {
    let (_root, cache, key) = fresh();
    let stored = cache
        .store_with(&key, |path: &Path| -> std::io::Result<()> {
            // While this writer compiles, another installs a bad entry.
            std::fs::create_dir_all(cache.entry_dir(&key))?;
            std::fs::write(cache.artifact_path(&key), b"bad")?;
            std::fs::write(cache.digest_path(&key), content_hash(b"good"))?;
            std::fs::write(path, b"good")
        })
        .expect("store");
    assert_eq!(contents(stored), b"good");
    assert_eq!(names(cache.dir()), [format!("{key}.d")]);
}

#[test]
fn test_failed_build_leaves_nothing() {
    let (_root, cache, key) = fresh();
    let err = cache
        .store_with(&key, |path: &Path| -> std::io::Result<()> {
            std::fs::write(path, b"half")?;
            Err(std::io::Error::other("compiler crashed"))
        })
        .expect_err("failed");
    assert_eq!(err.to_string(), "compiler crashed");
    assert!(names(cache.dir()).is_empty());
}

#[test]
fn test_keys_are_one_path_component() {
    let (_root, cache, _) = fresh();
    assert!(cache.store("../escape", b"x").is_err());
    assert!(cache.store("", b"x").is_err());
    assert!(cache.open_verified("../escape").is_none());
}

#[test]
fn test_compile_turns_of_one_key_take_turns() {
    let (_root, cache, _) = fresh();
    let first = cache.compile_turn("k");
    let _other_key = cache.compile_turn("other");
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            let _turn = cache.compile_turn("k");
            tx.send(()).expect("send");
        })
    };
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "second turn waits for the first"
    );
    drop(first);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("second turn after the first");
    waiter.join().expect("thread");
}
