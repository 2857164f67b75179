//! License files end to end through the public API: a vendor signs, a server loads, and every
//! refusal says which line, which field and why.

use qlm_license::file::{NOT_SIGNED, NOT_VERIFIED};
use qlm_license::{
    LicenseSet, LineError, TrustedKeys, VendorKey, load_license_file, load_licenses,
    parse_license_text, sign_license_text,
};

/// An unsigned license file with three pools on lines 2, 4 and 7.
const SITE: &str = "\
# ACME site license
FEATURE vhdl-editor vendor=sigasi version=4.0 count=25 start=2026-11-01 expires=2027-12-31 \\
        customer=\"ACME Corp\" hostid=ANY dup_group=user_host
INCREMENT simulator vendor=sigasi version=2.1 tokens=100 expires=permanent

FEATURE synth vendor=sigasi version=1.2 count=3 expires=2030-01-01 hostid=\"h1 h2\" \\
    notes=\"lab only\" borrow=no
";

fn vendor_key() -> VendorKey {
    VendorKey::from_seed([11; 32])
}

fn trusted() -> TrustedKeys {
    [vendor_key().public_key()].into_iter().collect()
}

fn signed_site() -> String {
    sign_license_text("site.lic", SITE, &vendor_key()).unwrap()
}

fn load(text: &str) -> LicenseSet {
    load_licenses("site.lic", text, &trusted())
}

fn features(set: &LicenseSet) -> Vec<&str> {
    set.pools.iter().map(|p| p.feature.as_str()).collect()
}

/// The single refusal of a set, checked to be on `line`.
fn only_refusal(set: &LicenseSet, line: usize) -> &LineError {
    assert_eq!(set.refused.len(), 1, "{:#?}", set.refused);
    assert_eq!(set.refused[0].line, line, "{}", set.refused[0]);
    &set.refused[0]
}

#[test]
fn a_signed_file_verifies_and_every_line_serves() {
    let set = load(&signed_site());
    assert_eq!(set.refused, vec![]);
    assert_eq!(features(&set), ["vhdl-editor", "simulator", "synth"]);
}

#[test]
fn editing_a_signed_field_refuses_exactly_that_line() {
    let signed = signed_site();
    for (from, to, line, survivors) in [
        ("count=25", "count=26", 2, ["simulator", "synth"]),
        ("expires=2027-12-31", "expires=2028-12-31", 2, ["simulator", "synth"]),
        ("version=4.0", "version=5.0", 2, ["simulator", "synth"]),
        ("version=2.1", "version=9.9", 5, ["vhdl-editor", "synth"]),
        ("hostid=\"h1 h2\"", "hostid=\"h1 h2 h3\"", 8, ["vhdl-editor", "simulator"]),
        ("notes=\"lab only\"", "notes=\"lab and office\"", 8, ["vhdl-editor", "simulator"]),
    ] {
        assert!(signed.contains(from), "{from} in {signed}");
        let set = load(&signed.replacen(from, to, 1));
        let refusal = only_refusal(&set, line);
        assert_eq!(
            (refusal.field.as_deref(), refusal.message.as_str()),
            (Some("sig"), NOT_VERIFIED)
        );
        assert_eq!(features(&set), survivors, "after {from} -> {to}");
    }
}

#[test]
fn an_unsigned_line_is_refused_and_the_others_serve() {
    let text = format!(
        "{}FEATURE extra vendor=sigasi version=1 count=1 expires=permanent\n",
        signed_site()
    );
    let set = load(&text);
    let line = text.lines().count();
    let refusal = only_refusal(&set, line);
    assert_eq!(refusal.message, NOT_SIGNED);
    assert_eq!(set.pools.len(), 3);
}

#[test]
fn a_line_signed_by_an_untrusted_key_is_refused() {
    let stranger = VendorKey::from_seed([99; 32]);
    let foreign = sign_license_text(
        "other.lic",
        "FEATURE pirate vendor=sigasi version=9 count=1000 expires=permanent\n",
        &stranger,
    )
    .unwrap();
    let text = signed_site() + &foreign;
    let set = load(&text);
    let refusal = only_refusal(&set, text.lines().position(|l| l.contains("pirate")).unwrap() + 1);
    assert!(refusal.message.contains("does not verify with any trusted vendor key"));
    assert_eq!(features(&set), ["vhdl-editor", "simulator", "synth"]);
}

#[test]
fn a_pasted_duplicate_line_counts_once() {
    let signed = sign_license_text(
        "d.lic",
        "FEATURE a vendor=v version=1 count=5 expires=permanent\n",
        &vendor_key(),
    )
    .unwrap();
    let set = load(&format!("{signed}{signed}"));
    assert_eq!(set.pools.len(), 1);
    let refusal = only_refusal(&set, signed.lines().count() + 1);
    assert!(refusal.message.contains("duplicate of line 1"), "{refusal}");
}

#[test]
fn malformed_lines_are_refused_naming_line_feature_and_field() {
    let ok = "vendor=sigasi version=1 expires=2030-01-01";
    let cases = [
        (
            "FEATURE f vendor sigasi version=1 count=1 expires=permanent".to_owned(),
            "vendor",
            "missing `=`",
        ),
        (format!("FEATURE f {ok} count=1 customer=\"ACME"), "customer", "unterminated"),
        (format!("FEATURE f {ok} count=1 colour=red"), "colour", "unknown key"),
        (format!("FEATURE f {ok} count=1 count=2"), "count", "given twice"),
        ("FEATURE f vendor=v version=1 count=1 expires=2027-02-30".to_owned(), "expires", "day 30"),
        (format!("FEATURE f {ok} count=-1"), "count", "not a whole number"),
        (format!("FEATURE f {ok} count=0"), "count", "minimum of 1"),
        (format!("FEATURE f {ok} count=99999999999"), "count", "maximum"),
        (format!("FEATURE f {ok} count=+5"), "count", "not a whole number"),
        (format!("FEATURE f {ok} count=1 tokens=1"), "tokens", "both count= and tokens="),
        (format!("FEATURE f {ok}"), "count", "missing"),
        (format!("FEATURE f {ok} count=1 start=2031-01-01"), "start", "after the expiry"),
        (format!("FEATURE -bad {ok} count=1"), "feature", "must start with a letter or a digit"),
        (format!("FEATURE f {ok} count=1 version=2"), "version", "given twice"),
        (format!("FEATURE f {ok} count=1 dup_group=everyone"), "dup_group", "none, user"),
        (format!("FEATURE f {ok} count=1 borrow=9000"), "borrow", "maximum"),
        (format!("LICENSE f {ok} count=1"), "keyword", "FEATURE or INCREMENT"),
    ];
    for (bad, field, needle) in cases {
        // The bad line sits between two good ones, so its line number and the survivors show.
        let text = format!("{}{bad}\n{}", signed_site(), signed_site());
        let set = load(&text);
        let bad_line = signed_site().lines().count() + 1;
        let refused: Vec<&LineError> = set.refused.iter().filter(|e| e.line == bad_line).collect();
        assert_eq!(refused.len(), 1, "{bad}: {:#?}", set.refused);
        let error = refused[0];
        assert_eq!(error.field.as_deref(), Some(field), "{bad}: {error}");
        assert!(error.message.contains(needle), "{bad}: {error}");
        let feature = match field {
            "keyword" | "feature" => String::new(),
            _ => "feature `f`: ".to_owned(),
        };
        let at = format!("site.lic:{bad_line}: {feature}field `{field}`: ");
        assert!(error.to_string().starts_with(&at), "{bad}: {error}");
        assert_eq!(set.pools.len(), 3, "the good lines serve (the repeats are duplicates)");
    }
}

#[test]
fn continuations_comments_and_blank_lines_parse_with_the_right_line_numbers() {
    let text = "# header\r\n\
                \r\n\
                FEATURE a vendor=v \\\r\n\
                \t  version=1 \\   \n\
                    count=2 expires=permanent   \n\
                \t# an indented comment\n\
                FEATURE b vendor=v version=1 count=0 expires=permanent\n";
    let lines = parse_license_text("c.lic", text);
    assert_eq!(lines.len(), 2);
    let a = lines[0].as_ref().unwrap();
    assert_eq!((a.line, a.pool.seats), (3, 2));
    let b = lines[1].as_ref().unwrap_err();
    assert_eq!((b.line, b.field.as_deref()), (7, Some("count")));
}

#[test]
fn canonical_form_is_stable_under_reformatting() {
    let plain = "FEATURE f vendor=v version=4.0 count=25 expires=2027-12-31 customer=\"ACME Corp\"";
    let reformatted = [
        "FEATURE   f\tvendor=v   version=4.0 count=25 \
         expires=2027-12-31   customer=\"ACME Corp\"  ",
        "FEATURE f vendor=\"v\" version=\"4.0\" count=\"25\" \
         expires=\"2027-12-31\" customer=\"ACME Corp\"",
        "FEATURE f vendor=v \\\n   version=4.0 \\\n count=25 expires=2027-12-31 \\\n \
         customer=\"ACME Corp\"",
        "INCREMENT f customer=\"ACME Corp\" expires=2027-12-31 count=25 version=4.0 vendor=v",
    ];
    let canonical =
        |text: &str| parse_license_text("r.lic", text)[0].as_ref().unwrap().canonical_form();
    let signed = sign_license_text("r.lic", plain, &vendor_key()).unwrap();
    let sig = signed.lines().find_map(|l| l.trim().strip_prefix("sig=")).unwrap().to_owned();
    for text in reformatted {
        assert_eq!(canonical(text), canonical(plain), "{text}");
        let set = load(&format!("{text} sig={sig}\n"));
        assert_eq!((set.pools.len(), set.refused.len()), (1, 0), "{text}: {:?}", set.refused);
    }
}

#[test]
fn canonical_form_and_pool_id_change_with_any_field_edit() {
    let base = "FEATURE f vendor=v version=4.0 count=25 start=2026-01-01 expires=2027-12-31 \
                issued=2025-12-01 hostid=h1 dup_group=user customer=ACME notes=n borrow=24";
    let parse = |text: &str| parse_license_text("e.lic", text).remove(0).unwrap();
    let original = parse(base);
    for (from, to) in [
        ("FEATURE f", "FEATURE g"),
        ("vendor=v", "vendor=w"),
        ("version=4.0", "version=4"),
        ("count=25", "tokens=25"),
        ("count=25", "count=26"),
        ("start=2026-01-01", "start=2026-01-02"),
        ("expires=2027-12-31", "expires=permanent"),
        ("issued=2025-12-01", "issued=2025-12-02"),
        ("hostid=h1", "hostid=h2"),
        ("dup_group=user", "dup_group=host"),
        ("customer=ACME", "customer=Acme"),
        ("notes=n", "notes=\"n \""),
        ("borrow=24", "borrow=no"),
        (" borrow=24", ""),
    ] {
        let edited = parse(&base.replacen(from, to, 1));
        assert_ne!(edited.canonical_form(), original.canonical_form(), "{from} -> {to}");
        assert_ne!(edited.pool.id, original.pool.id, "{from} -> {to}");
    }
}

#[test]
fn load_license_file_names_the_path_when_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.lic");
    std::fs::write(&path, signed_site()).unwrap();
    let set = load_license_file(&path, &trusted()).unwrap();
    assert_eq!(set.pools.len(), 3);
    let missing = dir.path().join("missing.lic");
    let error = load_license_file(&missing, &trusted()).unwrap_err();
    assert!(error.to_string().contains(&missing.display().to_string()), "{error}");
    std::fs::write(&path, b"# ok\nFEATURE \xff\n").unwrap();
    let error = load_license_file(&path, &trusted()).unwrap_err();
    assert!(error.to_string().contains("line 2"), "{error}");
}

mod properties {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use qlm_license::pool::MAX_POOL_SEATS;
    use qlm_license::{Date, Expiry, HostId, SeatUnit};

    use super::*;

    /// Fragments that steer random text towards the parser's corners.
    const FRAGMENTS: [&str; 14] = [
        "FEATURE ",
        "INCREMENT ",
        "f ",
        "count=",
        "expires=",
        "\"",
        "\\",
        "\\\n",
        "\n",
        "#",
        "=",
        " ",
        "sig=",
        "version=1 ",
    ];

    fn quote(value: &str) -> String {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }

    fn date() -> impl Strategy<Value = Date> {
        let first = Date::new(1970, 1, 1).unwrap().days_since_epoch();
        let last = Date::new(9999, 12, 31).unwrap().days_since_epoch();
        (first..=last).prop_map(Date::from_days_since_epoch)
    }

    /// The values of one valid FEATURE line.
    #[derive(Debug)]
    struct Fields {
        feature: String,
        vendor: String,
        version: String,
        seats: u32,
        tokens: bool,
        start: Option<Date>,
        end: Date,
        permanent: bool,
        hostids: Option<BTreeSet<String>>,
        dup_group: &'static str,
        customer: Option<String>,
        notes: Option<String>,
        borrow: Option<u32>,
    }

    impl Fields {
        /// The FEATURE line, every free-text value quoted.
        fn line(&self) -> String {
            let unit = if self.tokens { "tokens" } else { "count" };
            let expires =
                if self.permanent { "permanent".to_owned() } else { self.end.to_string() };
            let mut line = format!(
                "FEATURE {} vendor={} version={} {unit}={} expires={expires} dup_group={}",
                self.feature, self.vendor, self.version, self.seats, self.dup_group
            );
            if let Some(start) = self.start {
                line += &format!(" start={start}");
            }
            if let Some(ids) = &self.hostids {
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                line += &format!(" hostid={}", quote(&ids.join(", ")));
            }
            for (key, value) in [("customer", &self.customer), ("notes", &self.notes)] {
                if let Some(value) = value {
                    line += &format!(" {key}={}", quote(value));
                }
            }
            match self.borrow {
                Some(0) => line += " borrow=no",
                Some(hours) => line += &format!(" borrow={hours}"),
                None => {}
            }
            line
        }
    }

    fn host_id() -> impl Strategy<Value = String> {
        "[A-Za-z0-9:._-]{1,16}"
            .prop_filter("ANY is no host id", |id| !id.eq_ignore_ascii_case("any"))
    }

    fn valid_fields() -> impl Strategy<Value = Fields> {
        let names = ("[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", "[A-Za-z0-9][A-Za-z0-9_.-]{0,20}");
        let version = prop::collection::vec(any::<u32>(), 1..=4)
            .prop_map(|parts| parts.iter().map(u32::to_string).collect::<Vec<_>>().join("."));
        let seats = (1..=MAX_POOL_SEATS, any::<bool>());
        let dates = ((date(), date()), any::<bool>(), any::<bool>());
        let terms = (
            prop::option::of(prop::collection::btree_set(host_id(), 1..5)),
            prop::sample::select(vec!["none", "user", "host", "user_host"]),
            prop::option::of("\\PC{1,60}"),
            prop::option::of("\\PC{1,200}"),
            prop::option::of(0..=8760u32),
        );
        (names, version, seats, dates, terms).prop_map(
            |(
                (feature, vendor),
                version,
                (seats, tokens),
                ((a, b), use_start, permanent),
                terms,
            )| {
                let (hostids, dup_group, customer, notes, borrow) = terms;
                Fields {
                    feature,
                    vendor,
                    version,
                    seats,
                    tokens,
                    start: use_start.then_some(a.min(b)),
                    end: a.max(b),
                    permanent,
                    hostids,
                    dup_group,
                    customer,
                    notes,
                    borrow,
                }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn the_parser_never_panics_on_arbitrary_text(text in "(?s).{0,300}") {
            let _ = parse_license_text("p.lic", &text);
            let _ = load(&text);
            let _ = sign_license_text("p.lic", &text, &vendor_key());
        }

        #[test]
        fn the_parser_never_panics_on_license_like_text(
            pieces in prop::collection::vec(prop_oneof![
                prop::sample::select(FRAGMENTS.to_vec()).prop_map(str::to_owned),
                "[a-z0-9_.+-]{0,6}",
                "\\PC{0,3}",
            ], 0..40)
        ) {
            let text = pieces.concat();
            let _ = load(&text);
            if let Ok(signed) = sign_license_text("p.lic", &text, &vendor_key()) {
                // Whatever the signer accepts, the server serves, line for line.
                let set = load(&signed);
                prop_assert_eq!(&set.refused, &vec![]);
                prop_assert_eq!(set.pools.len(), parse_license_text("p.lic", &text).len());
            }
        }

        #[test]
        fn sign_then_verify_succeeds_for_any_valid_fields(fields in valid_fields()) {
            let line = fields.line();
            let signed = sign_license_text("v.lic", &line, &vendor_key());
            prop_assert!(signed.is_ok(), "{line}: {:?}", signed);
            let set = load(&signed.unwrap_or_default());
            prop_assert_eq!(&set.refused, &vec![]);
            prop_assert_eq!(set.pools.len(), 1);
            let pool = &set.pools[0];
            let unit = if fields.tokens { SeatUnit::Tokens } else { SeatUnit::Seats };
            let expires = if fields.permanent { Expiry::Permanent } else { Expiry::On(fields.end) };
            prop_assert_eq!((&pool.feature, &pool.vendor), (&fields.feature, &fields.vendor));
            prop_assert_eq!((pool.seats, pool.unit), (fields.seats, unit));
            prop_assert_eq!((pool.start, pool.expires), (fields.start, expires));
            prop_assert_eq!(&pool.customer, &fields.customer);
            prop_assert_eq!(&pool.notes, &fields.notes);
            let hostid = fields.hostids.clone().map_or(HostId::Any, HostId::List);
            prop_assert_eq!(&pool.hostid, &hostid);
        }
    }
}
