use proptest::prelude::*;

use super::*;

fn owned(input: &[u8]) -> OwnedValue {
    decode(input).unwrap().to_owned_value()
}

#[test]
fn golden_values_decode() {
    assert_eq!(owned(b"i42e"), OwnedValue::Int(42));
    assert_eq!(owned(b"i-42e"), OwnedValue::Int(-42));
    assert_eq!(owned(b"i0e"), OwnedValue::Int(0));
    assert_eq!(owned(b"i9223372036854775807e"), OwnedValue::Int(i64::MAX));
    assert_eq!(owned(b"i-9223372036854775808e"), OwnedValue::Int(i64::MIN));
    assert_eq!(owned(b"4:spam"), OwnedValue::from("spam"));
    assert_eq!(owned(b"0:"), OwnedValue::from(""));
    assert_eq!(
        owned(b"l4:spami7ee"),
        OwnedValue::List(vec![OwnedValue::from("spam"), OwnedValue::Int(7)])
    );
    let d = OwnedDict::new()
        .with("cow", "moo")
        .with("spam", vec![OwnedValue::from("eggs")]);
    assert_eq!(owned(b"d3:cow3:moo4:spaml4:eggsee"), OwnedValue::Dict(d));
}

#[test]
fn golden_values_encode() {
    let d = OwnedDict::new()
        .with("spam", vec![OwnedValue::from("a"), OwnedValue::Int(-3)])
        .with("cow", "moo")
        .with(b"\x00bin", OwnedValue::Int(0));
    let bytes = OwnedValue::from(d.clone()).encode();
    assert_eq!(bytes, b"d4:\x00bini0e3:cow3:moo4:spaml1:ai-3eee");
    assert_eq!(d.encode(), bytes);
    assert_eq!(d.encoded_len(), bytes.len());
    assert_eq!(
        OwnedValue::Int(i64::MIN).encode(),
        b"i-9223372036854775808e"
    );
    assert_eq!(OwnedValue::Int(i64::MIN).encoded_len(), 22);
    assert_eq!(OwnedValue::from(vec![0u8; 10]).encoded_len(), 13);
}

#[test]
fn raw_spans_are_exact_even_when_keys_are_out_of_order() {
    let input = b"d8:announce3:url4:infod4:name1:x6:lengthi5eee";
    let top = decode(input).unwrap();
    let dict = top.as_dict().unwrap();
    assert!(dict.is_canonical());
    let info = dict.get(b"info").unwrap();
    assert!(!info.as_dict().unwrap().is_canonical());
    assert_eq!(info.raw(), b"d4:name1:x6:lengthi5ee");
    assert_eq!(info.offset(), 22);
    assert_eq!(top.raw(), input);
    assert_ne!(
        info.to_owned_value().encode(),
        info.raw(),
        "re-encoding would change the hash"
    );
}

#[test]
fn getters_find_keys_in_canonical_and_unsorted_dicts() {
    for input in [
        &b"d1:ai1e1:b2:xy1:cle1:dde1:ei-1ee"[..],
        b"d1:ei-1e1:dde1:cle1:b2:xy1:ai1ee",
    ] {
        let v = decode(input).unwrap();
        let d = v.as_dict().unwrap();
        assert_eq!(d.get_int(b"a"), Some(1));
        assert_eq!(d.get_bytes(b"b"), Some(&b"xy"[..]));
        assert_eq!(d.get_str(b"b"), Some("xy"));
        assert_eq!(d.get_list(b"c").map(<[_]>::len), Some(0));
        assert!(d.get_dict(b"d").unwrap().is_empty());
        assert_eq!(d.get_int(b"e"), Some(-1));
        assert_eq!(d.get(b"zz"), None);
        assert_eq!(d.get_int(b"b"), None, "wrong type is None");
        assert_eq!(d.len(), 5);
    }
}

#[test]
fn every_bad_input_gets_its_typed_error() {
    use DecodeError as E;
    let cases: Vec<(&[u8], DecodeError)> = vec![
        (b"i-0e", E::NegativeZero { offset: 0 }),
        (b"i01e", E::LeadingZero { offset: 0 }),
        (b"i-01e", E::LeadingZero { offset: 0 }),
        (b"ie", E::EmptyInteger { offset: 0 }),
        (b"i-e", E::EmptyInteger { offset: 0 }),
        (b"i123456789012345678901e", E::IntegerOverflow { offset: 0 }),
        (b"i9223372036854775808e", E::IntegerOverflow { offset: 0 }),
        (
            b"i12x",
            E::NotADigit {
                offset: 3,
                byte: b'x',
            },
        ),
        (
            b"-1:",
            E::UnexpectedByte {
                offset: 0,
                byte: b'-',
            },
        ),
        (
            b"18446744073709551615:x",
            E::StringPastEnd {
                offset: 0,
                declared: u64::MAX,
                remaining: 1,
            },
        ),
        (b"18446744073709551616:x", E::IntegerOverflow { offset: 0 }),
        (
            b"5:abc",
            E::StringPastEnd {
                offset: 0,
                declared: 5,
                remaining: 3,
            },
        ),
        (b"01:a", E::LeadingZero { offset: 0 }),
        (
            b"3-abc",
            E::NotADigit {
                offset: 1,
                byte: b'-',
            },
        ),
        (b"l", E::UnexpectedEnd { offset: 1 }),
        (b"d", E::UnexpectedEnd { offset: 1 }),
        (b"li1e", E::UnexpectedEnd { offset: 4 }),
        (b"", E::UnexpectedEnd { offset: 0 }),
        (
            b"x",
            E::UnexpectedByte {
                offset: 0,
                byte: b'x',
            },
        ),
        (
            b"di1ei2ee",
            E::KeyNotString {
                offset: 1,
                byte: b'i',
            },
        ),
        (
            b"d1:ae",
            E::UnexpectedByte {
                offset: 4,
                byte: b'e',
            },
        ),
        (
            b"d1:ai1e1:ai2ee",
            E::DuplicateKey {
                offset: 7,
                key: "a".into(),
            },
        ),
        (
            b"d1:bi1e1:ai1e1:bi2ee",
            E::DuplicateKey {
                offset: 13,
                key: "b".into(),
            },
        ),
        (
            b"i1ei2e",
            E::TrailingBytes {
                offset: 3,
                count: 3,
            },
        ),
        (
            b"4:spamx",
            E::TrailingBytes {
                offset: 6,
                count: 1,
            },
        ),
    ];
    for (input, expected) in cases {
        let got = decode(input).unwrap_err();
        assert_eq!(
            got,
            expected,
            "input {:?}",
            input.escape_ascii().to_string()
        );
        assert_eq!(got.offset(), expected.offset());
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = vec![b'l'; 100_000];
    assert_eq!(
        decode(&deep).unwrap_err(),
        DecodeError::TooDeep {
            offset: DEFAULT_MAX_DEPTH,
            max_depth: DEFAULT_MAX_DEPTH
        }
    );
    let mut ok = vec![b'l'; DEFAULT_MAX_DEPTH];
    ok.extend(vec![b'e'; DEFAULT_MAX_DEPTH]);
    assert!(decode(&ok).is_ok());
    let huge = DecodeLimits {
        max_depth: usize::MAX,
        max_items: usize::MAX,
    };
    assert!(matches!(
        huge.decode(&deep),
        Err(DecodeError::TooDeep {
            max_depth: HARD_MAX_DEPTH,
            ..
        })
    ));
}

#[test]
fn item_budget_is_enforced() {
    let limits = DecodeLimits {
        max_depth: 8,
        max_items: 3,
    };
    assert!(limits.decode(b"li1ei2ee").is_ok());
    assert_eq!(
        limits.decode(b"li1ei2ei3ee").unwrap_err(),
        DecodeError::TooManyItems {
            offset: 7,
            max_items: 3
        }
    );
    assert!(limits.decode(b"d1:ai1ee").is_ok(), "dict + key + value = 3");
    assert!(limits.decode(b"d1:ai1e1:be").is_err());
}

#[test]
fn decode_prefix_leaves_trailing_data() {
    let input = b"d8:msg_typei1e5:piecei0eeRAW PIECE DATA";
    let (value, used) = decode_prefix(input).unwrap();
    assert_eq!(&input[used..], b"RAW PIECE DATA");
    assert_eq!(value.as_dict().unwrap().get_int(b"msg_type"), Some(1));
    assert!(decode(input).is_err());
}

#[test]
fn every_truncation_of_valid_input_fails_cleanly() {
    let input = b"d4:infod6:lengthi123e4:name5:a.txt12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae3:lstli-1e0:ld1:x1:yeeee";
    assert!(decode(input).is_ok());
    for cut in 0..input.len() {
        let err = decode(&input[..cut]).unwrap_err();
        assert!(err.offset() <= cut, "cut {cut}: {err}");
    }
}

fn arb_value() -> impl Strategy<Value = OwnedValue> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(OwnedValue::Int),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(OwnedValue::Bytes),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(OwnedValue::List),
            prop::collection::btree_map(prop::collection::vec(any::<u8>(), 0..8), inner, 0..6)
                .prop_map(|m| {
                    let mut d = OwnedDict::new();
                    for (k, v) in m {
                        d.insert(k, v);
                    }
                    OwnedValue::Dict(d)
                }),
        ]
    })
}

proptest! {
    #[test]
    fn encode_decode_round_trips(value in arb_value()) {
        let bytes = value.encode();
        prop_assert_eq!(bytes.len(), value.encoded_len());
        let decoded = decode(&bytes).unwrap();
        prop_assert_eq!(decoded.raw(), &bytes[..]);
        prop_assert_eq!(decoded.to_owned_value(), value);
        let (_, used) = decode_prefix(&[&bytes[..], b"tail"].concat()).unwrap();
        prop_assert_eq!(used, bytes.len());
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(v) = decode(&input) {
            prop_assert_eq!(v.raw(), &input[..]);
        }
    }

    #[test]
    fn mutated_valid_input_never_panics(value in arb_value(), at in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = value.encode();
        let at = at % bytes.len();
        bytes[at] = byte;
        if let Err(e) = decode(&bytes) {
            prop_assert!(e.offset() <= bytes.len());
        }
    }
}
