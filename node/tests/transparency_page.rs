//! The transparency page in a real headless Chromium: the figures it shows match
//! the node's state; a screenshot is saved as a test artifact.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use traceless_node::ManualClock;

fn attr(dom: &str, marker: &str, name: &str) -> Option<String> {
    let at = dom.find(marker)?;
    let rest = &dom[at..];
    let end = rest.find('>')?;
    let tag = &rest[..end];
    let key = format!("{name}=\"");
    let i = tag.find(&key)? + key.len();
    Some(tag[i..].split('"').next()?.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transparency_page_in_headless_chromium() {
    if !chromium::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let node = start_node(relay_config(dir.path()), &clock).await;
    let st = node.core.clone();
    let a = authority();
    // Day TODAY-2: 7 + 5 keys; day TODAY-16: 4 keys, deleted below; today: 3
    // keys under embargo.
    st.ingest(&signed_batch(&a, 1, TODAY - 2, 7, NOW - 100))
        .unwrap();
    st.ingest(&signed_batch(&a, 2, TODAY - 2, 5, NOW - 100))
        .unwrap();
    clock.set(NOW - 2 * 86_400);
    st.ingest(&signed_batch(&a, 3, TODAY - 16, 4, NOW - 2 * 86_400))
        .unwrap();
    clock.set(NOW);
    st.ingest(&signed_batch(&a, 4, TODAY, 3, NOW - 100))
        .unwrap();
    // The scheduled job may run retention first (the clock jumped); either way
    // the batch of day TODAY-16 is deleted and logged exactly once.
    if let Some(record) = st.run_retention().unwrap() {
        assert_eq!(record.deleted[0].key_count, 4);
    }
    assert_eq!(st.store.deletion_log().unwrap().len(), 1);
    // The page is as of the period boundary: the next one shows all of this.
    next_period(&st, &clock);

    let url = format!("http://{}/", node.http_addr);
    let profile = tempfile::tempdir().unwrap();
    let u = url.clone();
    let p = profile.path().to_owned();
    let dom = tokio::task::spawn_blocking(move || chromium::run(&p, &["--dump-dom".into()], &u))
        .await
        .unwrap();
    assert!(dom.contains("What this Traceless node holds"), "{dom}");
    let summary = "id=\"summary\"";
    assert_eq!(
        attr(&dom, summary, "data-total-keys").as_deref(),
        Some("12")
    );
    assert_eq!(
        attr(&dom, summary, "data-embargoed-keys").as_deref(),
        Some("3")
    );
    assert_eq!(
        attr(&dom, summary, "data-deletion-log-entries").as_deref(),
        Some("1")
    );
    let row = format!("data-day=\"{}\"", TODAY - 2);
    assert_eq!(attr(&dom, &row, "data-keys").as_deref(), Some("12"));
    let expires = st
        .store
        .batches_of_day(TODAY - 2)
        .unwrap()
        .iter()
        .flat_map(|m| &m.days)
        .filter(|d| d.day == TODAY - 2)
        .map(|d| d.expires_at)
        .max()
        .unwrap();
    assert_eq!(
        attr(&dom, &row, "data-deleted-by"),
        Some(expires.to_string())
    );
    assert_eq!(
        attr(&dom, &format!("data-day=\"{TODAY}\""), "data-embargoed").as_deref(),
        Some("3")
    );
    assert!(
        !dom.contains(&format!("data-day=\"{}\"", TODAY - 16)),
        "deleted day still shown"
    );
    assert_eq!(
        attr(&dom, "class=\"deletion\"", "data-keys").as_deref(),
        Some("4")
    );
    // The public record: its size and root as the node's log has them, and a
    // link from the deletion to its inclusion proof, which verifies.
    let (cp, _) = st.log.checkpoint().unwrap();
    assert_eq!(
        attr(&dom, "id=\"log\"", "data-log-size"),
        Some(cp.size.to_string())
    );
    assert_eq!(
        attr(&dom, "id=\"log\"", "data-log-root"),
        Some(traceless_protocol::log::hex_hash(&cp.root))
    );
    let href = attr(&dom, "class=\"proof\"", "href")
        .unwrap()
        .replace("&amp;", "&");
    let proof = get(node.http_addr, &href).json();
    let index = proof["index"].as_u64().unwrap();
    let path: Vec<[u8; 32]> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            hex::decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect();
    let entry = st.log.entry(index).unwrap().unwrap();
    assert!(entry.starts_with(b"deleted batch "), "{entry:?}");
    traceless_protocol::log::verify_inclusion(
        &traceless_protocol::log::leaf_hash(&entry),
        index,
        cp.size,
        &path,
        &cp.root,
    )
    .unwrap();
    assert!(dom.contains(&format!("data-origin=\"{ORIGIN}\"")));
    assert!(dom.contains(&hex::encode(st.node_id())));
    assert!(dom.contains(&node.peer_id.to_string()));

    let shot: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("transparency-page.png");
    let _ = std::fs::remove_file(&shot);
    let p = profile.path().to_owned();
    let args = vec![
        format!("--screenshot={}", shot.display()),
        "--window-size=1000,1400".into(),
    ];
    tokio::task::spawn_blocking(move || chromium::run(&p, &args, &url))
        .await
        .unwrap();
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "screenshot is a PNG");
    eprintln!("screenshot saved to {}", shot.display());
    drop(st);
    node.shutdown().await;
}
