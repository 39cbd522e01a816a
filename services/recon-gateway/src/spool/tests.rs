use super::*;
use chrono::Utc;
use recon_store::evidence::{Outcome, Source};

fn record(key: &str) -> Evidence {
    Evidence {
        dedupe_key: key.into(),
        source: Source::Gateway,
        account_id: None,
        api_token_lookup: Some("ab".repeat(16)),
        endpoint: "payment/purchase".into(),
        idempotency_key: None,
        partner_token_sent: false,
        partner_token_added: true,
        is_valid_partner_token: Some(1),
        outcome: Outcome::Answered,
        response_status: Some(200),
        transaction_id: Some(7),
        invoice_number: None,
        customer_code: None,
        amount_minor: Some(100),
        currency: Some("CAD".into()),
        observed_at: Utc::now(),
        receipt_id: None,
        submitted_by: None,
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "recon-gateway-spool-{name}-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(dir: &Path, segment_bytes: u64, memory_capacity: usize) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        segment_bytes,
        memory_capacity,
    }
}

#[test]
fn each_record_is_one_line_and_segments_roll_over_at_their_size() {
    let dir = temp_dir("roll");
    let spool = Spool::open(config(&dir, 600, 10)).unwrap();
    for i in 0..5 {
        assert_eq!(spool.append(&record(&format!("k{i}"))), Appended::Spooled);
    }
    assert_eq!(spool.depth(), 5);
    let ids = spool.segments().unwrap();
    assert!(ids.len() >= 2, "{ids:?}");
    assert!(spool.is_finished(ids[0]));
    assert!(!spool.is_finished(*ids.last().unwrap()));
    let mut seen = Vec::new();
    for id in &ids {
        let (lines, _) = read_lines(&spool.path(*id), 0, 100).unwrap();
        for line in lines {
            seen.push(
                serde_json::from_slice::<Evidence>(&line)
                    .unwrap()
                    .dedupe_key,
            );
        }
    }
    assert_eq!(seen, ["k0", "k1", "k2", "k3", "k4"]);
    spool.sync().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_reopened_spool_counts_what_was_left_and_appends_after_it() {
    let dir = temp_dir("reopen");
    {
        let spool = Spool::open(config(&dir, 1 << 20, 10)).unwrap();
        spool.append(&record("a"));
        spool.append(&record("b"));
    }
    let spool = Spool::open(config(&dir, 1 << 20, 10)).unwrap();
    assert_eq!(spool.depth(), 2);
    let before = spool.segments().unwrap();
    assert!(
        spool.is_finished(before[0]),
        "an earlier run's segment gets nothing new"
    );
    spool.append(&record("c"));
    let after = spool.segments().unwrap();
    assert_eq!(after.len(), 2);
    assert!(after[1] > before[0]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reading_stops_at_an_unterminated_line_and_says_the_tail_is_torn() {
    let dir = temp_dir("torn");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("00000000000000000001.spool");
    std::fs::write(&path, b"{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
    let (lines, next) = read_lines(&path, 0, 1).unwrap();
    assert_eq!(lines, vec![b"{\"a\":1}".to_vec()]);
    let (lines, next) = read_lines(&path, next, 10).unwrap();
    assert_eq!(lines, vec![b"{\"b\":2}".to_vec()]);
    assert!(tail_is_torn(&path, next).unwrap());
    let (lines, _) = read_lines(&path, next, 10).unwrap();
    assert!(lines.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn when_the_spool_cannot_be_written_records_go_to_memory_then_are_dropped_past_its_bound() {
    let dir = temp_dir("broken");
    let spool = Spool::open(config(&dir, 1 << 20, 2)).unwrap();
    // The directory vanishes (a volume unmounted): no new segment can be created.
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(spool.append(&record("a")), Appended::InMemory);
    assert_eq!(spool.append(&record("b")), Appended::InMemory);
    assert_eq!(spool.append(&record("c")), Appended::Dropped);
    assert_eq!(spool.in_memory(), 2);
    let taken = spool.take_from_memory(10);
    assert_eq!(taken.len(), 2);
    spool.return_to_memory(taken);
    let again: Vec<String> = spool
        .take_from_memory(10)
        .into_iter()
        .map(|e| e.dedupe_key)
        .collect();
    assert_eq!(again, ["a", "b"], "returned records keep their order");
}

#[test]
fn an_idle_active_segment_is_finished_once_old_enough() {
    let dir = temp_dir("idle");
    let spool = Spool::open(config(&dir, 1 << 20, 10)).unwrap();
    spool.append(&record("a"));
    let id = spool.segments().unwrap()[0];
    spool.finish_if_older(id, Duration::from_secs(3600));
    assert!(!spool.is_finished(id));
    spool.finish_if_older(id, Duration::ZERO);
    assert!(spool.is_finished(id));
    spool.append(&record("b"));
    assert_eq!(spool.segments().unwrap().len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}
