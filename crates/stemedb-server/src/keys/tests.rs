//! The key store's behaviour on its own: limits, last-admin, durable-before-visible, pruning,
//! file modes, and authentication during a save.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;

use stemedb_testkit::{WAIT, key};

use super::*;

fn open_new() -> (tempfile::TempDir, KeyStore, String) {
    let dir = tempfile::tempdir().unwrap();
    let (store, token_path) = KeyStore::open(dir.path()).unwrap();
    let admin = std::fs::read_to_string(token_path.unwrap())
        .unwrap()
        .trim()
        .to_owned();
    (dir, store, admin)
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Rewrites `keys.json` in `dir` with `edit` applied to each stored key's JSON object.
fn edit_stored_keys(dir: &Path, edit: impl Fn(&mut serde_json::Map<String, serde_json::Value>)) {
    let path = dir.join(KEYS_FILE);
    let mut file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for stored in file["keys"].as_array_mut().unwrap() {
        edit(stored.as_object_mut().unwrap());
    }
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
}

#[test]
fn a_key_authenticates_until_revoked_and_survives_a_reopen() {
    let (dir, store, admin) = open_new();
    assert!(store.authenticate(&admin).is_ok());
    let agent = store.create_agent().unwrap();
    let (token, info) = store.create_key("w", vec![Role::Write], vec![agent]).unwrap();
    assert_eq!(store.authenticate(&token).unwrap().info, info);
    // A wrong secret, a wrong id, garbage: refused.
    // (The last digit changed: a fixed "0" would equal the token one time in sixteen.)
    let last = if token.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &token[..token.len() - 1]);
    assert!(store.authenticate(&wrong).is_err());
    assert!(store.authenticate("sdb_0000_00").is_err());
    assert!(store.authenticate("Bearer").is_err());
    let revoked = store.revoke(&info.id).unwrap();
    assert!(revoked.revoked && revoked.revoked_ms.is_some());
    assert_eq!(store.authenticate(&token), Err("the API key was revoked"));
    drop(store);
    let (store, created) = KeyStore::open(dir.path()).unwrap();
    assert!(created.is_none());
    assert_eq!(store.authenticate(&token), Err("the API key was revoked"));
    assert!(store.authenticate(&admin).is_ok());
    assert!(store.custodial(&agent).is_some());
    let mode = std::fs::metadata(dir.path().join(KEYS_FILE)).unwrap();
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_new_key_with_duplicates_too_many_agents_no_role_or_a_long_label_is_refused() {
    let (_dir, store, _) = open_new();
    let agents: Vec<AgentId> = (0..=KEY_AGENTS_MAX).map(|n| key(n as u8).agent_id()).collect();
    let refused = |label: &str, roles: Vec<Role>, agents: Vec<AgentId>| {
        store.create_key(label, roles, agents).unwrap_err()
    };
    assert!(matches!(
        refused("l", vec![Role::Read], agents.clone()),
        KeyStoreError::TooManyAgents { count, max: KEY_AGENTS_MAX } if count == KEY_AGENTS_MAX + 1
    ));
    assert!(matches!(
        refused("l", vec![Role::Read, Role::Write, Role::Read], vec![]),
        KeyStoreError::DuplicateRole(Role::Read)
    ));
    let twice = vec![agents[0], agents[1], agents[0]];
    assert!(
        matches!(refused("l", vec![Role::Write], twice), KeyStoreError::DuplicateAgent(a) if a == agents[0])
    );
    assert!(matches!(refused("l", vec![], vec![]), KeyStoreError::NoRoles));
    let long = "x".repeat(KEY_LABEL_BYTES_MAX + 1);
    assert!(matches!(
        refused(&long, vec![Role::Read], vec![]),
        KeyStoreError::LabelTooLong { .. }
    ));
    assert_eq!(store.keys().len(), 1, "nothing refused was stored");
    // Exactly at the limits: accepted.
    let label = "x".repeat(KEY_LABEL_BYTES_MAX);
    let roles = vec![Role::Read, Role::Write, Role::Admin];
    store
        .create_key(&label, roles, agents[..KEY_AGENTS_MAX].to_vec())
        .unwrap();
}

#[test]
fn a_full_store_drops_its_earliest_revoked_key_or_refuses() {
    let (_dir, store, _) = open_new();
    let mut inner = Inner::clone(&store.snapshot());
    let max = 3;
    let mut ids = Vec::new();
    for n in 0..2 {
        let (_, stored) = mint(&format!("k{n}"), vec![Role::Read], vec![]).unwrap();
        ids.push(stored.info.id.clone());
        inner.insert_key(stored, max).unwrap();
    }
    let (_, extra) = mint("extra", vec![Role::Read], vec![]).unwrap();
    assert!(matches!(
        inner.clone().insert_key(extra.clone(), max),
        Err(KeyStoreError::StoreFull { max: 3 })
    ));
    inner.revoke(&ids[1], 20).unwrap();
    inner.revoke(&ids[0], 10).unwrap();
    inner.insert_key(extra, max).unwrap();
    assert_eq!(inner.keys.len(), max);
    assert!(
        !inner.keys.contains_key(&ids[0]),
        "the earliest revoked key made room"
    );
    assert!(inner.keys.contains_key(&ids[1]));
}

#[test]
fn custodial_agents_are_bounded() {
    let mut inner = Inner::default();
    inner.insert_agent(key(1), 1).unwrap();
    assert!(matches!(
        inner.insert_agent(key(2), 1),
        Err(KeyStoreError::AgentsFull { max: 1 })
    ));
}

#[test]
fn the_last_admin_key_cannot_be_revoked_until_another_exists() {
    let (_dir, store, admin) = open_new();
    let admin_id = store.authenticate(&admin).unwrap().info.id;
    assert!(matches!(store.revoke(&admin_id), Err(KeyStoreError::LastAdmin(id)) if id == admin_id));
    assert!(store.authenticate(&admin).is_ok());
    // A non-admin key does not count.
    store.create_key("r", vec![Role::Read], vec![]).unwrap();
    assert!(matches!(
        store.revoke(&admin_id),
        Err(KeyStoreError::LastAdmin(_))
    ));
    let (second, info) = store.create_key("a", vec![Role::Admin], vec![]).unwrap();
    store.revoke(&admin_id).unwrap();
    assert_eq!(store.authenticate(&admin), Err("the API key was revoked"));
    assert!(matches!(store.revoke(&info.id), Err(KeyStoreError::LastAdmin(_))));
    assert!(store.authenticate(&second).is_ok());
}

#[test]
fn a_failed_save_changes_nothing_in_memory_or_on_disk() {
    let (dir, store, admin) = open_new();
    let (reader, info) = store.create_key("r", vec![Role::Read], vec![]).unwrap();
    let before = store.keys();
    // A directory where the temporary file goes: the write fails.
    let tmp = dir.path().join("keys.json.tmp");
    std::fs::create_dir(&tmp).unwrap();
    let error = store.create_key("new", vec![Role::Read], vec![]).unwrap_err();
    assert!(
        matches!(&error, KeyStoreError::Io { path, .. } if path == &tmp),
        "{error}"
    );
    assert!(matches!(store.revoke(&info.id), Err(KeyStoreError::Io { .. })));
    assert!(matches!(store.create_agent(), Err(KeyStoreError::Io { .. })));
    assert_eq!(store.keys(), before);
    assert!(
        store.authenticate(&reader).is_ok(),
        "the revoke whose save failed took no effect"
    );
    std::fs::remove_dir(&tmp).unwrap();
    drop(store);
    let (store, _) = KeyStore::open(dir.path()).unwrap();
    assert_eq!(store.keys(), before);
    assert!(store.authenticate(&admin).is_ok());
}

#[test]
fn revoked_keys_are_pruned_after_the_grace_period() {
    let (dir, store, _) = open_new();
    let (old, old_info) = store.create_key("old", vec![Role::Read], vec![]).unwrap();
    let (recent, recent_info) = store.create_key("recent", vec![Role::Read], vec![]).unwrap();
    store.revoke(&old_info.id).unwrap();
    store.revoke(&recent_info.id).unwrap();
    drop(store);
    let expired = now_ms() - REVOKED_KEY_GRACE_MS - 1;
    edit_stored_keys(dir.path(), |k| {
        if k["id"] == old_info.id.as_str() {
            k.insert("revoked_ms".into(), expired.into());
        }
    });
    let (store, _) = KeyStore::open(dir.path()).unwrap();
    let ids: Vec<String> = store.keys().into_iter().map(|k| k.id).collect();
    assert!(!ids.contains(&old_info.id), "{ids:?}");
    assert!(ids.contains(&recent_info.id), "{ids:?}");
    assert_eq!(store.authenticate(&old), Err("unknown API key"));
    assert_eq!(store.authenticate(&recent), Err("the API key was revoked"));
    // Dropped from the file too, not only from memory.
    let text = std::fs::read_to_string(dir.path().join(KEYS_FILE)).unwrap();
    assert!(!text.contains(&old_info.id));
}

#[test]
fn a_revoked_key_from_a_file_without_revoked_ms_gets_its_grace_from_the_open() {
    let (dir, store, _) = open_new();
    let (token, info) = store.create_key("old", vec![Role::Read], vec![]).unwrap();
    store.revoke(&info.id).unwrap();
    drop(store);
    edit_stored_keys(dir.path(), |k| {
        k.remove("revoked_ms");
    });
    let opened_ms = now_ms();
    let (store, _) = KeyStore::open(dir.path()).unwrap();
    assert_eq!(store.authenticate(&token), Err("the API key was revoked"));
    let listed = store.keys().into_iter().find(|k| k.id == info.id).unwrap();
    assert!(listed.revoked_ms.unwrap() >= opened_ms);
}

#[test]
fn a_key_file_or_admin_token_open_to_group_or_others_is_refused_at_open() {
    let (dir, store, _) = open_new();
    drop(store);
    for (file, mode) in [(KEYS_FILE, 0o640), (KEYS_FILE, 0o602), (ADMIN_TOKEN_FILE, 0o644)] {
        let path = dir.path().join(file);
        chmod(&path, mode);
        let error = KeyStore::open(dir.path()).err().expect("refused");
        assert!(
            matches!(&error, KeyStoreError::Permissions { path: p, mode: m } if p == &path && *m == mode),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains(&format!("chmod 600 {}", path.display())),
            "{error}"
        );
        chmod(&path, 0o600);
    }
    assert!(KeyStore::open(dir.path()).is_ok());
}

#[test]
fn authentication_completes_while_a_save_is_in_progress() {
    let (_dir, mut store, admin) = open_new();
    let (entered_tx, entered_rx) = crossbeam_channel::bounded(1);
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(1);
    store.before_save = Some(Box::new(move || {
        let _ = entered_tx.try_send(());
        let _ = release_rx.recv_timeout(WAIT);
    }));
    let store = Arc::new(store);
    let writer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || store.create_key("new", vec![Role::Read], vec![]))
    };
    entered_rx
        .recv_timeout(WAIT)
        .expect("the writer reaches its save");
    // On another thread, so that a reader blocked by the save fails at the deadline.
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let reader = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || done_tx.send((store.authenticate(&admin).is_ok(), store.keys().len())))
    };
    let (authenticated, listed) = done_rx
        .recv_timeout(WAIT)
        .expect("authentication completes while a save is in progress");
    assert!(authenticated);
    assert_eq!(listed, 1, "the new key is not visible before it is saved");
    release_tx.send(()).unwrap();
    reader.join().unwrap().unwrap();
    let (token, _) = writer.join().unwrap().unwrap();
    assert!(store.authenticate(&token).is_ok());
}
