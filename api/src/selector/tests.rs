//! Label syntax, matching per operator, validation paths, the string form and its round trip.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn keys_follow_the_kubernetes_qualified_name_rules() {
    for good in [
        "app",
        "a",
        "A_b.c-D9",
        "example.com/app",
        "k8s.io/x",
        "a-b.c/Z",
        &"n".repeat(63),
        &format!("{}/n", "p".repeat(253)),
    ] {
        assert_eq!(validate_label_key(good), Ok(()), "{good}");
    }
    let cases: [(&str, &str); 11] = [
        ("", "a label key must not be empty"),
        ("a/b/c", "more than one '/'"),
        ("/app", "empty prefix"),
        ("example.com/", "empty name"),
        ("Example.com/app", "not a DNS subdomain"),
        ("ex_ample.com/app", "not a DNS subdomain"),
        ("-a.com/app", "not a DNS subdomain"),
        ("-app", "invalid name"),
        ("app.", "invalid name"),
        ("a b", "invalid name"),
        ("äpp", "invalid name"),
    ];
    for (bad, message) in cases {
        let err = validate_label_key(bad).unwrap_err().to_string();
        assert!(err.contains(message), "{bad:?}: {err}");
    }
    assert_eq!(
        validate_label_key(&"n".repeat(64)),
        Err(SelectorProblem::KeyNameTooLong {
            key: "n".repeat(64),
            len: 64
        })
    );
    let long_prefix = format!("{}/n", "p".repeat(254));
    assert!(matches!(
        validate_label_key(&long_prefix),
        Err(SelectorProblem::KeyPrefixTooLong { len: 254, .. })
    ));
}

#[test]
fn values_may_be_empty_or_up_to_63_label_characters() {
    for good in ["", "web", "v1.2_3-X", &"v".repeat(63)] {
        assert_eq!(validate_label_value(good), Ok(()), "{good}");
    }
    for bad in ["-web", "web-", "a b", "a/b", "a,b", "ä"] {
        assert!(
            matches!(
                validate_label_value(bad),
                Err(SelectorProblem::ValueInvalid { .. })
            ),
            "{bad}"
        );
    }
    assert_eq!(
        validate_label_value(&"v".repeat(64))
            .unwrap_err()
            .to_string(),
        format!("value {:?} has 64 characters, more than 63", "v".repeat(64))
    );
}

#[test]
fn dns_names() {
    assert!(is_dns_label("net-1") && is_dns_subdomain("a.b-c.d"));
    assert!(!is_dns_label("a.b") && !is_dns_label("") && !is_dns_label(&"a".repeat(64)));
    assert!(!is_dns_subdomain("a..b") && !is_dns_subdomain("A") && !is_dns_subdomain("a-"));
    assert!(!is_dns_subdomain(&"a".repeat(254)));
}

#[test]
fn the_empty_selector_matches_everything() {
    let s = LabelSelector::everything();
    assert!(s.is_empty());
    assert!(s.matches(&Labels::new()));
    assert!(s.matches(&labels(&[("app", "web")])));
    assert_eq!(s.validate("sel"), Ok(()));
}

#[test]
fn each_operator_matches_as_in_kubernetes() {
    let web = labels(&[("app", "web"), ("tier", "front")]);
    let db = labels(&[("app", "db")]);
    let none = Labels::new();
    let cases = [
        (
            Requirement::new("app", Operator::In, ["web", "api"]),
            [true, false, false],
        ),
        (
            Requirement::new("app", Operator::NotIn, ["web"]),
            [false, true, true],
        ),
        (
            Requirement::new("tier", Operator::Exists, Vec::<String>::new()),
            [true, false, false],
        ),
        (
            Requirement::new("tier", Operator::DoesNotExist, Vec::<String>::new()),
            [false, true, true],
        ),
    ];
    for (r, expected) in cases {
        let got = [r.matches(&web), r.matches(&db), r.matches(&none)];
        assert_eq!(got, expected, "{r}");
    }
}

#[test]
fn match_labels_and_expressions_must_all_hold() {
    let s = LabelSelector::from_labels([("app", "web")]).with_expression(Requirement::new(
        "env",
        Operator::In,
        ["prod", "stage"],
    ));
    assert!(s.matches(&labels(&[("app", "web"), ("env", "prod"), ("x", "y")])));
    assert!(!s.matches(&labels(&[("app", "web")])));
    assert!(!s.matches(&labels(&[("app", "db"), ("env", "prod")])));
    assert!(!s.matches(&labels(&[("app", "web"), ("env", "dev")])));
}

#[test]
fn validation_names_every_bad_field() {
    let s = LabelSelector::from_labels([("bad key", "ok"), ("good", "-bad")])
        .with_expression(Requirement::new("env", Operator::In, Vec::<String>::new()))
        .with_expression(Requirement::new("x", Operator::Exists, ["v"]))
        .with_expression(Requirement::new("y", Operator::NotIn, ["ok", "no way"]));
    let errors = s.validate("spec.networkInterfaceSelector").unwrap_err();
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.networkInterfaceSelector.matchLabels[\"bad key\"]",
            "spec.networkInterfaceSelector.matchLabels[\"good\"]",
            "spec.networkInterfaceSelector.matchExpressions[0].values",
            "spec.networkInterfaceSelector.matchExpressions[1].values",
            "spec.networkInterfaceSelector.matchExpressions[2].values[1]",
        ]
    );
    assert_eq!(
        errors.0[2].to_string(),
        "spec.networkInterfaceSelector.matchExpressions[0].values: operator In needs at least \
         one value"
    );
    assert!(errors.to_string().contains("; "));
}

#[test]
fn the_string_form_of_the_list_call() {
    let s = LabelSelector::parse("app=web,tier!=db,env in (a,b),!legacy,team").unwrap();
    let expected = LabelSelector::from_labels([("app", "web")])
        .with_expression(Requirement::new("tier", Operator::NotIn, ["db"]))
        .with_expression(Requirement::new("env", Operator::In, ["a", "b"]))
        .with_expression(Requirement::new(
            "legacy",
            Operator::DoesNotExist,
            Vec::<String>::new(),
        ))
        .with_expression(Requirement::new(
            "team",
            Operator::Exists,
            Vec::<String>::new(),
        ));
    assert_eq!(s, expected);
    assert_eq!(
        s.to_string(),
        "app=web,tier notin (db),env in (a,b),!legacy,team"
    );
    assert!(s.matches(&labels(&[("app", "web"), ("env", "a"), ("team", "x")])));
    assert!(!s.matches(&labels(&[
        ("app", "web"),
        ("env", "a"),
        ("team", "x"),
        ("tier", "db")
    ])));
}

#[test]
fn the_string_form_tolerates_blanks_and_kubernetes_variants() {
    let s: LabelSelector = "  app == web , env notin ( a , b ), k.io/x=, y in (a,) "
        .parse()
        .unwrap();
    assert_eq!(s.match_labels, labels(&[("app", "web"), ("k.io/x", "")]));
    assert_eq!(
        s.match_expressions,
        [
            Requirement::new("env", Operator::NotIn, ["a", "b"]),
            Requirement::new("y", Operator::In, ["a", ""]),
        ]
    );
    assert_eq!(
        LabelSelector::parse("").unwrap(),
        LabelSelector::everything()
    );
    assert_eq!(
        LabelSelector::parse("   ").unwrap(),
        LabelSelector::everything()
    );
    // A second `=` on a key cannot live in matchLabels; it still has to hold.
    let both = LabelSelector::parse("a=x,a=y,a=x").unwrap();
    assert_eq!(both.match_labels, labels(&[("a", "x")]));
    assert_eq!(
        both.match_expressions,
        [Requirement::new("a", Operator::In, ["y"])]
    );
    assert!(!both.matches(&labels(&[("a", "x")])));
}

#[test]
fn a_list_of_only_the_empty_value_prints_so_that_it_reads_back() {
    let s =
        LabelSelector::everything().with_expression(Requirement::new("app", Operator::In, [""]));
    assert_eq!(s.to_string(), "app in (,)");
    let back = LabelSelector::parse(&s.to_string()).unwrap();
    assert!(back.matches(&labels(&[("app", "")])));
    assert!(!back.matches(&labels(&[("app", "x")])) && !back.matches(&Labels::new()));
}

#[test]
fn parse_errors_say_where_and_what() {
    let cases = [
        (
            "app=web,",
            "at offset 8: expected a label key or '!', found end of input",
        ),
        (",a", "at offset 0: expected a label key or '!', found ','"),
        (
            "a b",
            "at offset 2: expected an operator (=, ==, !=, in, notin), ',' or end of input, found \"b\"",
        ),
        ("env in a", "at offset 7: expected '(', found \"a\""),
        (
            "env in ()",
            "at offset 8: \"env\" in (): the value list must not be empty",
        ),
        (
            "env notin (a",
            "at offset 12: expected ',' or ')', found end of input",
        ),
        (
            "env in (a,",
            "at offset 10: expected a label value, ',' or ')', found end of input",
        ),
        (
            "a=b=c",
            "at offset 3: expected ',' or end of input, found '='",
        ),
        ("a=(b)", "at offset 2: expected a label value, found '('"),
        ("!", "at offset 1: expected a label key, found end of input"),
        (
            "count>3",
            "at offset 5: operator \">\" is not supported (use =, ==, !=, in, notin, key or !key)",
        ),
        (
            "a<=3",
            "at offset 1: operator \"<=\" is not supported (use =, ==, !=, in, notin, key or !key)",
        ),
        (
            "app=-web",
            "at offset 4: value \"-web\" is invalid: use letters, digits, '-', '_' and '.', starting and ending with a letter or digit (or leave it empty)",
        ),
        (
            "x, Bad/app",
            "at offset 3: key \"Bad/app\" has a prefix that is not a DNS subdomain (lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit)",
        ),
        (
            "a in (b) c",
            "at offset 9: expected ',' or end of input, found \"c\"",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(
            LabelSelector::parse(text).unwrap_err().to_string(),
            message,
            "{text:?}"
        );
    }
}

// Strategies over a small alphabet, so that generated selectors and label sets meet often.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("app".to_string()),
        Just("tier".to_string()),
        Just("env".to_string()),
        Just("example.com/team".to_string()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("a".to_string()),
        Just("b".to_string()),
        Just("web-1.x_y".to_string()),
    ]
}

fn requirement() -> impl Strategy<Value = Requirement> {
    (key(), 0..4u8, prop::collection::vec(value(), 1..3)).prop_map(|(key, op, values)| match op {
        0 => Requirement::new(key, Operator::In, values),
        1 => Requirement::new(key, Operator::NotIn, values),
        2 => Requirement::new(key, Operator::Exists, Vec::<String>::new()),
        _ => Requirement::new(key, Operator::DoesNotExist, Vec::<String>::new()),
    })
}

fn selector() -> impl Strategy<Value = LabelSelector> {
    (
        prop::collection::btree_map(key(), value(), 0..3),
        prop::collection::vec(requirement(), 0..4),
    )
        .prop_map(|(match_labels, match_expressions)| LabelSelector {
            match_labels,
            match_expressions,
        })
}

fn label_set() -> impl Strategy<Value = Labels> {
    prop::collection::btree_map(key(), value(), 0..4)
}

proptest! {
    #[test]
    fn the_string_form_reads_back_to_the_same_meaning(
        s in selector(),
        samples in prop::collection::vec(label_set(), 1..16),
    ) {
        prop_assert_eq!(s.validate("s"), Ok(()));
        let text = s.to_string();
        let back = LabelSelector::parse(&text).unwrap();
        // Printing is a fixed point once parsed.
        prop_assert_eq!(back.to_string(), text.clone());
        for labels in &samples {
            prop_assert_eq!(back.matches(labels), s.matches(labels), "{} on {:?}", text, labels);
        }
        // A selector always selects the labels it asks for, when they are consistent.
        let asked: Labels = s.match_labels.clone();
        let only_labels = LabelSelector { match_labels: asked.clone(), match_expressions: vec![] };
        prop_assert!(only_labels.matches(&asked));
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in "[a-z =!,()<>/.\\-]{0,24}") {
        let _ = LabelSelector::parse(&text);
    }
}
