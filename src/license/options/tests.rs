//! Scenarios of the options file parser, and properties of parser and printer.

use std::collections::BTreeSet;

use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;
use proptest::sample::Index;

use super::*;

const EXAMPLE: &str = r#"# /etc/quorumlm/site.opt
GROUP    designers alice bob "Ann Lee"
GROUP    designers carol            # GROUP lines with one name add up
HOST_GROUP lab ws01 ws02 \
             ws03                   # a line ending in \ continues
RESERVE 2 vhdl-editor GROUP designers
MAX     5 simulator   HOST_GROUP lab
INCLUDE   simulator   GROUP designers
EXCLUDE   simulator   USER  mallory
EXCLUDEALL            HOST  kiosk
TIMEOUT   vhdl-editor 3600
LINGER    simulator   120
MAX_BORROW_HOURS vhdl-editor 72
"#;

fn who(kind: WhoKind, name: &str) -> Who {
    Who { kind, name: name.to_owned() }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn parse(text: &str) -> Policy {
    parse_options("site.opt", text).unwrap_or_else(|errors| panic!("{errors:#?}"))
}

fn errors(text: &str) -> Vec<LineError> {
    match parse_options("site.opt", text) {
        Ok(policy) => panic!("expected errors, got {policy:#?}"),
        Err(errors) => errors,
    }
}

/// Asserts that `text` is refused with exactly one error, on `line`, whose field starts with
/// `field` and whose message contains `fragment`.
#[track_caller]
fn assert_refused(text: &str, line: usize, field: &str, fragment: &str) {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{text:?}: {errors:#?}");
    let error = &errors[0];
    assert_eq!(error.origin, "site.opt");
    assert_eq!(error.line, line, "{text:?}: {error}");
    let got = error.field.as_deref().unwrap_or("");
    assert!(got.starts_with(field), "{text:?}: field {got:?}, expected {field:?}: {error}");
    assert!(error.message.contains(fragment), "{text:?}: {error}");
}

#[test]
fn the_example_file_parses_into_the_expected_policy() {
    let policy = parse(EXAMPLE);
    let mut expected = Policy::default();
    expected.groups.insert("designers".into(), set(&["alice", "bob", "Ann Lee", "carol"]));
    expected.host_groups.insert("lab".into(), set(&["ws01", "ws02", "ws03"]));
    expected.reserves.push(SeatRule {
        seats: 2,
        feature: "vhdl-editor".into(),
        who: who(WhoKind::Group, "designers"),
        line: 6,
    });
    expected.maxes.push(SeatRule {
        seats: 5,
        feature: "simulator".into(),
        who: who(WhoKind::HostGroup, "lab"),
        line: 7,
    });
    expected.includes.push(AccessRule {
        feature: Some("simulator".into()),
        who: who(WhoKind::Group, "designers"),
        line: 8,
    });
    expected.excludes.push(AccessRule {
        feature: Some("simulator".into()),
        who: who(WhoKind::User, "mallory"),
        line: 9,
    });
    expected.excludes.push(AccessRule {
        feature: None,
        who: who(WhoKind::Host, "kiosk"),
        line: 10,
    });
    expected.timeouts.insert("vhdl-editor".into(), 3600);
    expected.lingers.insert("simulator".into(), 120);
    expected.max_borrow_hours.insert("vhdl-editor".into(), 72);
    assert_eq!(policy, expected);
    assert!(policy.allows("simulator", "Ann Lee", "ws01"));
    assert!(!policy.allows("simulator", "dave", "ws01"), "INCLUDE makes simulator exclusive");
}

#[test]
fn an_empty_file_is_a_policy_that_restricts_nothing() {
    assert_eq!(parse(""), Policy::default());
    assert_eq!(parse("# nothing yet\n\n   \n"), Policy::default());
}

#[test]
fn group_lines_with_one_name_add_up() {
    let policy =
        parse("GROUP eng alice bob\nHOST_GROUP lab a\nGROUP eng carol alice\nHOST_GROUP lab b");
    assert_eq!(policy.groups["eng"], set(&["alice", "bob", "carol"]));
    assert_eq!(policy.host_groups["lab"], set(&["a", "b"]));
}

#[test]
fn keywords_and_types_are_case_insensitive_and_names_are_not() {
    let policy = parse("group Eng Alice\nReserve 1 sim group Eng\nexcludeall user alice");
    assert_eq!(policy.groups["Eng"], set(&["Alice"]));
    assert_eq!(policy.reserves[0].who, who(WhoKind::Group, "Eng"));
    assert!(policy.allows("sim", "Alice", "h"), "EXCLUDEALL alice does not name Alice");
    assert_refused("GROUP Eng a\nRESERVE 1 sim GROUP eng", 2, "RESERVE name", "not defined");
}

#[test]
fn continued_statements_are_numbered_by_their_first_line() {
    let policy = parse("# c\nGROUP eng \\\n  alice \\\n  bob\nRESERVE 1 \\\n sim USER alice");
    assert_eq!(policy.groups["eng"], set(&["alice", "bob"]));
    assert_eq!(policy.reserves[0].line, 5);
    assert_refused("# c\nRESERVE 1 \\\n sim \\\n USER", 2, "RESERVE", "expected");
}

#[test]
fn wrong_argument_counts_say_the_expected_form() {
    let cases = [
        ("GROUP", "GROUP", "expected `GROUP name user...`"),
        ("GROUP eng", "GROUP", "expected `GROUP name user...`"),
        ("HOST_GROUP lab", "HOST_GROUP", "expected `HOST_GROUP name host...`"),
        ("RESERVE 1 sim USER", "RESERVE", "expected `RESERVE n feature TYPE name`"),
        ("RESERVE 1 sim USER a b", "RESERVE", "expected `RESERVE n feature TYPE name`"),
        ("MAX 1 sim", "MAX", "expected `MAX n feature TYPE name`"),
        ("INCLUDE sim USER", "INCLUDE", "expected `INCLUDE feature TYPE name`"),
        ("EXCLUDE sim USER a b", "EXCLUDE", "expected `EXCLUDE feature TYPE name`"),
        ("INCLUDEALL sim USER a", "INCLUDEALL", "expected `INCLUDEALL TYPE name`"),
        ("EXCLUDEALL USER", "EXCLUDEALL", "expected `EXCLUDEALL TYPE name`"),
        ("TIMEOUT sim", "TIMEOUT", "expected `TIMEOUT feature secs`"),
        ("LINGER sim 1 2", "LINGER", "expected `LINGER feature secs`"),
        ("MAX_BORROW_HOURS", "MAX_BORROW_HOURS", "expected `MAX_BORROW_HOURS feature hours`"),
    ];
    for (line, field, message) in cases {
        assert_refused(&format!("# header\n{line}\n"), 2, field, message);
    }
}

#[test]
fn counts_must_be_whole_numbers_in_range() {
    let cases = [
        ("RESERVE x sim USER a", "not a whole number"),
        ("RESERVE -1 sim USER a", "not a whole number"),
        ("RESERVE +1 sim USER a", "not a whole number"),
        ("RESERVE 2.5 sim USER a", "not a whole number"),
        ("RESERVE 0 sim USER a", "out of range: RESERVE takes 1 to 1000000 seats"),
        ("RESERVE 1000001 sim USER a", "out of range"),
        ("MAX 0 sim USER a", "out of range: MAX takes 1 to 1000000 seats"),
        ("MAX 99999999999999999999999 sim USER a", "out of range"),
    ];
    for (line, message) in cases {
        let keyword = line.split(' ').next().unwrap_or_default();
        assert_refused(line, 1, &format!("{keyword} n"), message);
    }
    let policy = parse("RESERVE 1000000 sim USER a\nMAX 007 sim USER a");
    assert_eq!((policy.reserves[0].seats, policy.maxes[0].seats), (1_000_000, 7));
}

#[test]
fn settings_must_be_within_their_bounds() {
    let cases = [
        ("TIMEOUT sim 0", "TIMEOUT secs", "TIMEOUT takes 1 to 2678400 seconds"),
        ("TIMEOUT sim 2678401", "TIMEOUT secs", "out of range"),
        ("TIMEOUT sim 1h", "TIMEOUT secs", "not a whole number"),
        ("LINGER sim 2678401", "LINGER secs", "LINGER takes 0 to 2678400 seconds"),
        ("MAX_BORROW_HOURS sim 8761", "MAX_BORROW_HOURS hours", "takes 0 to 8760 hours"),
    ];
    for (line, field, message) in cases {
        assert_refused(line, 1, field, message);
    }
    let policy = parse("TIMEOUT a 1\nTIMEOUT b 2678400\nLINGER a 0\nMAX_BORROW_HOURS a 0");
    assert_eq!(policy.timeouts["a"], 1);
    assert_eq!(policy.timeouts["b"], MAX_TIMEOUT_SECS);
    assert_eq!((policy.lingers["a"], policy.max_borrow_hours["a"]), (0, 0));
}

#[test]
fn a_bad_type_is_refused_naming_the_choices() {
    assert_refused("RESERVE 1 sim USR a", 1, "RESERVE TYPE", "expected USER, GROUP, HOST or");
    assert_refused("INCLUDEALL DISPLAY :0", 1, "INCLUDEALL TYPE", "FlexLM TYPE that QuorumLM");
    let policy = parse("HOST_GROUP lab a\nEXCLUDE sim host_group lab\nINCLUDE sim Host b");
    assert_eq!(policy.excludes[0].who, who(WhoKind::HostGroup, "lab"));
    assert_eq!(policy.includes[0].who, who(WhoKind::Host, "b"));
}

#[test]
fn unknown_keywords_are_named() {
    assert_refused("# x\nRESERV 1 sim USER a", 2, "RESERV", "unknown keyword `RESERV`");
    assert_refused("TIMEOUTALL 3600", 1, "TIMEOUTALL", "FlexLM keyword that QuorumLM does not");
}

#[test]
fn a_group_named_by_a_rule_must_be_defined_somewhere_in_the_file() {
    let later =
        parse("RESERVE 1 sim GROUP eng\nINCLUDEALL HOST_GROUP lab\nGROUP eng a\nHOST_GROUP lab h");
    assert_eq!(later.reserves.len(), 1, "groups may be defined after the rules naming them");
    assert_refused("GROUP eng a\nMAX 1 sim GROUP egn", 2, "MAX name", "GROUP `egn` is not defined");
    assert_refused(
        "HOST_GROUP lab h\nEXCLUDE sim GROUP lab",
        2,
        "EXCLUDE name",
        "GROUP `lab` is not defined in this file (there is a HOST_GROUP `lab`)",
    );
}

#[test]
fn a_bad_group_line_is_one_error_not_one_per_rule_naming_the_group() {
    assert_refused(
        "GROUP eng\nRESERVE 1 sim GROUP eng\nMAX 2 sim GROUP eng",
        1,
        "GROUP",
        "expected",
    );
}

#[test]
fn a_setting_given_twice_names_the_first_line() {
    assert_refused(
        "TIMEOUT sim 3600\nLINGER sim 5\n# again\nTIMEOUT sim 7200",
        4,
        "TIMEOUT",
        "TIMEOUT for `sim` is already set on line 1",
    );
    let policy = parse("TIMEOUT sim 3600\nTIMEOUT editor 3600\nLINGER sim 3600");
    assert_eq!(policy.timeouts.len(), 2);
}

#[test]
fn feature_qualifiers_are_refused_not_ignored() {
    assert_refused(
        "RESERVE 1 sim:VERSION=2.0 USER a",
        1,
        "RESERVE feature",
        "feature qualifiers like `sim:VERSION=2.0` are not supported; name the feature alone",
    );
    assert_refused("TIMEOUT \"sim:HOSTID=x\" 900", 1, "TIMEOUT feature", "not supported");
}

#[test]
fn feature_and_principal_names_are_checked() {
    assert_refused("INCLUDE -sim USER a", 1, "INCLUDE feature", "must start with a letter");
    assert_refused("LINGER s/m 5", 1, "LINGER feature", "contains `/`");
    assert_refused("EXCLUDE sim USER \"\"", 1, "EXCLUDE name", "the name is empty");
    assert_refused("GROUP eng a\u{7}b", 1, "GROUP member", "contains `\\u{7}`");
    assert_refused("GROUP \" eng\" a", 1, "GROUP name", "starts or ends with a space");
    let long = "u".repeat(MAX_PRINCIPAL_NAME_LEN + 1);
    assert_refused(&format!("INCLUDEALL USER {long}"), 1, "INCLUDEALL name", "bytes long");
    let policy = parse("GROUP eng \"Ann Lee\" DOM\\bob\nEXCLUDE sim USER \"Ann Lee\"");
    assert_eq!(policy.groups["eng"], set(&["Ann Lee", "DOM\\bob"]));
}

#[test]
fn every_bad_line_is_reported_and_nothing_is_applied() {
    let text = "GROUP eng alice\n\
                RESERVE 0 sim GROUP eng\n\
                RESERVE 1 sim GROUP eng\n\
                FROB x\n\
                MAX 1 sim:VERSION=2 USR x\n\
                INCLUDE sim GROUP nobody\n\
                TIMEOUT sim \"unterminated\n";
    let errors = errors(text);
    let located: Vec<_> =
        errors.iter().map(|e| (e.line, e.field.clone().unwrap_or_default())).collect();
    assert_eq!(
        located,
        [
            (2, "RESERVE n".to_owned()),
            (4, "FROB".to_owned()),
            (5, "MAX feature".to_owned()),
            (5, "MAX TYPE".to_owned()),
            (6, "INCLUDE name".to_owned()),
            (7, String::new()),
        ]
    );
    assert_eq!(
        errors[0].to_string(),
        "site.opt:2: field `RESERVE n`: `0` is out of range: RESERVE takes 1 to 1000000 seats"
    );
}

#[test]
fn a_printed_policy_parses_back_to_itself() {
    let policy = parse(EXAMPLE);
    let printed = policy.to_string();
    assert_eq!(without_lines(parse(&printed)), without_lines(policy));
    assert!(printed.contains("GROUP designers \"Ann Lee\" alice bob carol\n"), "{printed}");
    assert!(printed.contains("EXCLUDEALL HOST kiosk\n"), "{printed}");
}

#[test]
fn long_groups_are_printed_on_continued_lines() {
    let members: Vec<String> = (0..60).map(|i| format!("user{i:03}")).collect();
    let policy = parse(&format!("GROUP big {}", members.join(" ")));
    let printed = policy.to_string();
    assert!(printed.lines().count() > 1, "{printed}");
    assert!(printed.lines().all(|l| l.len() <= print::WRAP_COLUMN), "{printed}");
    assert_eq!(parse(&printed), policy);
}

#[test]
fn loading_a_file_names_it_in_every_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.opt");
    let err = load_options_file(&missing).expect_err("no such file");
    assert!(matches!(err, OptionsFileError::Read { .. }));
    assert!(err.to_string().contains("missing.opt"), "{err}");

    let bad = dir.path().join("bad.opt");
    std::fs::write(&bad, "GROUP eng a\nRESERVE 1 sim GROUP eng\nLINGER sim x\n").expect("write");
    let err = load_options_file(&bad).expect_err("bad line");
    let OptionsFileError::Lines(errors) = &err else { panic!("{err}") };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].origin, bad.display().to_string());
    assert!(err.to_string().contains("bad.opt:3: field `LINGER secs`"), "{err}");

    let binary = dir.path().join("binary.opt");
    std::fs::write(&binary, b"GROUP eng a\nGROUP eng \xff\n").expect("write");
    let err = load_options_file(&binary).expect_err("not UTF-8");
    assert!(err.to_string().contains("binary.opt:2: the text is not UTF-8"), "{err}");

    let good = dir.path().join("good.opt");
    std::fs::write(&good, EXAMPLE).expect("write");
    assert_eq!(load_options_file(&good).expect("example loads"), parse(EXAMPLE));
}

#[test]
fn a_file_over_the_size_limit_is_refused_unread() {
    let dir = tempfile::tempdir().expect("temp dir");
    let huge = dir.path().join("huge.opt");
    let comment = "#".repeat(1024) + "\n";
    let size = usize::try_from(MAX_OPTIONS_FILE_BYTES).expect("fits") / comment.len() + 1;
    std::fs::write(&huge, comment.repeat(size)).expect("write");
    let err = load_options_file(&huge).expect_err("too large");
    assert!(matches!(err, OptionsFileError::TooLarge { .. }), "{err}");
}

/// The policy with every line number set to 0: what printing does not keep.
fn without_lines(mut policy: Policy) -> Policy {
    for rule in policy.reserves.iter_mut().chain(&mut policy.maxes) {
        rule.line = 0;
    }
    for rule in policy.includes.iter_mut().chain(&mut policy.excludes) {
        rule.line = 0;
    }
    policy
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z][a-z0-9_.-]{0,8}",
        1 => "[A-Z][a-z]{0,4} [A-Z][a-z]{0,4}",
        1 => "#[a-z]{1,4}",
        1 => "[a-z]{1,4}\\\\",
        1 => "DOM\\\\[a-z]{1,4}",
        1 => "[a-z]{1,3}#[\u{e9}\u{4e2d}]",
    ]
    .prop_filter("valid name", |n| check_principal_name(n).is_ok())
}

fn feature() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9_.-]{0,15}"
}

/// A `TYPE name` before its group is chosen: (kind, which group, name if not a group).
fn who_seed() -> impl Strategy<Value = (u8, Index, String)> {
    (0..4u8, any::<Index>(), name())
}

fn groups() -> impl Strategy<Value = BTreeMap<String, BTreeSet<String>>> {
    btree_map(name(), btree_set(name(), 1..12), 0..4)
}

fn settings(bounds: Bounds) -> impl Strategy<Value = BTreeMap<String, u32>> {
    btree_map(feature(), bounds.min..=bounds.max, 0..4)
}

/// A policy of random valid rules, whose groups are all defined.
fn policy() -> impl Strategy<Value = Policy> {
    let seat_rules = || vec((1..=MAX_POOL_SEATS, feature(), who_seed()), 0..6);
    let access_rules = || vec((proptest::option::of(feature()), who_seed()), 0..6);
    (
        groups(),
        groups(),
        seat_rules(),
        seat_rules(),
        access_rules(),
        access_rules(),
        settings(TIMEOUT_SECS),
        settings(LINGER_SECS),
        settings(BORROW_HOURS),
    )
        .prop_map(|(groups, host_groups, reserves, maxes, includes, excludes, t, l, b)| {
            let pick = |(kind, index, name): (u8, Index, String)| {
                let named = |kind, names: &BTreeMap<String, _>| {
                    let all: Vec<&String> = names.keys().collect();
                    (!all.is_empty()).then(|| who(kind, all[index.index(all.len())]))
                };
                let group = match kind {
                    0 => named(WhoKind::Group, &groups),
                    1 => named(WhoKind::HostGroup, &host_groups),
                    _ => None,
                };
                let plain = if kind == 2 { WhoKind::Host } else { WhoKind::User };
                group.unwrap_or_else(|| who(plain, &name))
            };
            let seat =
                |(seats, feature, seed)| SeatRule { seats, feature, who: pick(seed), line: 0 };
            let access = |(feature, seed)| AccessRule { feature, who: pick(seed), line: 0 };
            Policy {
                reserves: reserves.into_iter().map(seat).collect(),
                maxes: maxes.into_iter().map(seat).collect(),
                includes: includes.into_iter().map(access).collect(),
                excludes: excludes.into_iter().map(access).collect(),
                groups,
                host_groups,
                timeouts: t,
                lingers: l,
                max_borrow_hours: b,
            }
        })
}

/// Text made of the file's own words, so the parser gets past its first checks.
fn word_soup() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        Just("RESERVE".to_owned()),
        Just("max".to_owned()),
        Just("GROUP".to_owned()),
        Just("HOST_GROUP".to_owned()),
        Just("INCLUDEALL".to_owned()),
        Just("exclude".to_owned()),
        Just("TIMEOUT".to_owned()),
        Just("USER".to_owned()),
        Just("\\".to_owned()),
        Just("\"".to_owned()),
        Just("#".to_owned()),
        Just("\n".to_owned()),
        Just("\\\n".to_owned()),
        "[0-9]{1,25}",
        "[a-z:=]{1,6}",
        name(),
    ];
    vec(word, 0..40).prop_map(|words| words.join(" "))
}

#[track_caller]
fn assert_well_formed_answer(text: &str) {
    let lines = text.split('\n').count();
    match parse_options("fuzz", text) {
        Ok(policy) => {
            // Whatever parses prints and parses back.
            let printed = policy.to_string();
            let again = parse_options("printed", &printed);
            assert_eq!(again.map(without_lines), Ok(without_lines(policy)), "{printed}");
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            assert!(errors.windows(2).all(|w| w[0].line <= w[1].line), "sorted: {errors:?}");
            assert!(errors.iter().all(|e| (1..=lines).contains(&e.line)), "{errors:?}");
        }
    }
}

proptest! {
    #[test]
    fn the_parser_answers_any_text_without_panicking(text in any::<String>()) {
        assert_well_formed_answer(&text);
    }

    #[test]
    fn the_parser_answers_any_mix_of_its_own_words(text in word_soup()) {
        assert_well_formed_answer(&text);
    }

    #[test]
    fn a_printed_policy_parses_to_the_same_policy(policy in policy()) {
        let printed = policy.to_string();
        let parsed = parse_options("printed", &printed)
            .unwrap_or_else(|errors| panic!("{printed}\n{errors:#?}"));
        prop_assert_eq!(without_lines(parsed.clone()), policy);
        for rule in &parsed.reserves {
            let line = printed.lines().nth(rule.line - 1).unwrap_or_default();
            prop_assert!(line.starts_with("RESERVE "), "line {} is {:?}", rule.line, line);
        }
        prop_assert_eq!(parsed.to_string(), printed);
    }
}
