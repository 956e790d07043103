//! Hand-assembled streams for every opcode family, real pickles from `CPython` and
//! cloudpickle (generated once with `pickle.dumps`/`cloudpickle.dumps`; the expected
//! globals were read off `pickletools.dis`), and property tests that nothing panics.

use proptest::prelude::*;

use super::*;

// ── helpers ──────────────────────────────────────────────────────────────────────────────

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `SHORT_BINUNICODE`.
fn su(text: &str) -> Vec<u8> {
    let mut out = vec![0x8c, u8::try_from(text.len()).unwrap()];
    out.extend_from_slice(text.as_bytes());
    out
}

/// `GLOBAL module\nname\n`.
fn global(module: &str, name: &str) -> Vec<u8> {
    format!("c{module}\n{name}\n").into_bytes()
}

fn names(scan: &PickleScan) -> Vec<(&str, &str, RefKind)> {
    scan.globals
        .iter()
        .map(|g| (g.module.as_str(), g.name.as_str(), g.kind))
        .collect()
}

fn subimports(scan: &PickleScan) -> Vec<(&str, bool)> {
    scan.subimports
        .iter()
        .map(|s| (s.module.as_str(), s.dynamic))
        .collect()
}

/// Run up to STOP and report the stack and mark depths the stream leaves behind.
fn depths(data: &[u8]) -> Result<(usize, usize), PickleError> {
    let mut scanner = Scanner::new(data);
    scanner.run_to_stop()?;
    Ok((scanner.stack.len(), scanner.marks.len()))
}

/// Structural facts every successful scan must satisfy, whatever the input.
fn check_invariants(data: &[u8], scan: &PickleScan) {
    for g in &scan.globals {
        let expected = match g.kind {
            RefKind::Global => b'c',
            RefKind::StackGlobal => 0x93,
            RefKind::Inst => b'i',
        };
        assert_eq!(data[g.offset], expected, "{g:?}");
    }
    for s in &scan.subimports {
        assert_eq!(data[s.offset], b'R', "{s:?}");
    }
    assert!(scan.protocol <= HIGHEST_PROTOCOL);
}

// ── real pickles ─────────────────────────────────────────────────────────────────────────

// [OrderedDict(a=1), date(2020, 1, 2), {1, 2}, b"x", "s", Decimal("1.5"),
//  functools.partial(max, 1), frozenset({3})] in protocols 0, 2 and 4.
const P0: &[u8] = b"\
    (lp0\nccollections\nOrderedDict\np1\n(tRp2\nVa\np3\nI1\nsacdatetime\ndate\np4\n(c_codecs\
    \nencode\np5\n(V\x07\xe4\x01\x02\np6\nVlatin1\np7\ntp8\nRp9\ntp10\nRp11\nac__builtin__\n\
    set\np12\n((lp13\nI1\naI2\natp14\nRp15\nag5\n(Vx\np16\ng7\ntp17\nRp18\naVs\np19\nacdecim\
    al\nDecimal\np20\n(V1.5\np21\ntp22\nRp23\nacfunctools\npartial\np24\n(c__builtin__\nmax\
    \np25\ntp26\nRp27\n(g25\n(I1\ntp28\n(dp29\nNtp30\nbac__builtin__\nfrozenset\np31\n((lp32\
    \nI3\natp33\nRp34\na.";

const P2: &[u8] = b"\
    \x80\x02]q\x00(ccollections\nOrderedDict\nq\x01)Rq\x02X\x01\x00\x00\x00aq\x03K\x01scdate\
    time\ndate\nq\x04c_codecs\nencode\nq\x05X\x05\x00\x00\x00\x07\xc3\xa4\x01\x02q\x06X\x06\
    \x00\x00\x00latin1q\x07\x86q\x08Rq\x09\x85q\nRq\x0bc__builtin__\nset\nq\x0c]q\x0d(K\x01K\
    \x02e\x85q\x0eRq\x0fh\x05X\x01\x00\x00\x00xq\x10h\x07\x86q\x11Rq\x12X\x01\x00\x00\x00sq\
    \x13cdecimal\nDecimal\nq\x14X\x03\x00\x00\x001.5q\x15\x85q\x16Rq\x17cfunctools\npartial\
    \nq\x18c__builtin__\nmax\nq\x19\x85q\x1aRq\x1b(h\x19K\x01\x85q\x1c}q\x1dNtq\x1ebc__built\
    in__\nfrozenset\nq\x1f]q K\x03a\x85q!Rq\"e.";

const P4: &[u8] = b"\
    \x80\x04\x95\xbd\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x0bcollections\x94\x8c\x0bOrdered\
    Dict\x94\x93\x94)R\x94\x8c\x01a\x94K\x01s\x8c\x08datetime\x94\x8c\x04date\x94\x93\x94C\
    \x04\x07\xe4\x01\x02\x94\x85\x94R\x94\x8f\x94(K\x01K\x02\x90C\x01x\x94\x8c\x01s\x94\x8c\
    \x07decimal\x94\x8c\x07Decimal\x94\x93\x94\x8c\x031.5\x94\x85\x94R\x94\x8c\x09functools\
    \x94\x8c\x07partial\x94\x93\x94\x8c\x08builtins\x94\x8c\x03max\x94\x93\x94\x85\x94R\x94(\
    h\x1aK\x01\x85\x94}\x94Nt\x94b(K\x03\x91\x94e.";

const P5_OOB: &[u8] = b"\
    \x80\x05\x95\x08\x00\x00\x00\x00\x00\x00\x00]\x94(\x97\x98\x97e.";

const CLOUD: &[u8] = b"\
    \x80\x05\x95m\x02\x00\x00\x00\x00\x00\x00\x8c\x17cloudpickle.cloudpickle\x94\x8c\x0e_mak\
    e_function\x94\x93\x94(h\x00\x8c\x0d_builtin_type\x94\x93\x94\x8c\x08CodeType\x94\x85\
    \x94R\x94(K\x01K\x00K\x00K\x01K\x04K\x03Cd\x97\x00t\x00\x00\x00\x00\x00\x00\x00\x00\x00\
    \x00\x00j\x01\x00\x00\x00\x00\x00\x00\x00\x00\xa0\x02\x00\x00\x00\x00\x00\x00\x00\x00\
    \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00|\x00d\x01\xa6\x02\x00\x00\xab\x02\x00\
    \x00\x00\x00\x00\x00\x00\x00t\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00j\x04\x00\x00\
    \x00\x00\x00\x00\x00\x00j\x05\x00\x00\x00\x00\x00\x00\x00\x00f\x02S\x00\x94N\x8c\x01x\
    \x94\x86\x94(\x8c\x02os\x94\x8c\x04path\x94\x8c\x04join\x94\x8c\x0bcollections\x94\x8c\
    \x03abc\x94\x8c\x07Mapping\x94t\x94\x8c\x01p\x94\x85\x94\x8c\x08<string>\x94\x8c\x01f\
    \x94\x8c\x01f\x94K\x03C\"\x80\x00\xdd\x0b\x0d\x8c7\x8f<\x8a<\x98\x01\x983\xd1\x0b\x1f\
    \xd4\x0b\x1f\xa5\x1b\xa4\x1f\xd4!8\xd0\x0b8\xd0\x048\x94C\x00\x94))t\x94R\x94}\x94\x8c\
    \x08__name__\x94\x8c\x08__main__\x94sNNNt\x94R\x94h\x00\x8c\x12_function_setstate\x94\
    \x93\x94h\x1f}\x94}\x94(h\x1ch\x15\x8c\x0c__qualname__\x94h\x15\x8c\x0f__annotations__\
    \x94}\x94\x8c\x0e__kwdefaults__\x94N\x8c\x0c__defaults__\x94N\x8c\n__module__\x94h\x1d\
    \x8c\x07__doc__\x94N\x8c\x0b__closure__\x94N\x8c\x17_cloudpickle_submodules\x94]\x94h\
    \x00\x8c\x09subimport\x94\x93\x94\x8c\x0fcollections.abc\x94\x85\x94R\x94a\x8c\x0b__glob\
    als__\x94}\x94(h\x0bh/h\x0b\x85\x94R\x94h\x0eh/h\x0e\x85\x94R\x94uu\x86\x94\x86R0.";

const DYN: &[u8] = b"\
    \x80\x04\x95\x8d\x00\x00\x00\x00\x00\x00\x00\x8c\x17cloudpickle.cloudpickle\x94\x8c\x11d\
    ynamic_subimport\x94\x93\x94\x8c\x06tk_dyn\x94}\x94(\x8c\x08__name__\x94h\x03\x8c\x07__d\
    oc__\x94N\x8c\x0b__package__\x94N\x8c\n__loader__\x94N\x8c\x08__spec__\x94N\x8c\x05VALUE\
    \x94K\x01u\x86\x94R\x94.";

const REAL: &[&[u8]] = &[P0, P2, P4, P5_OOB, CLOUD, DYN];

#[test]
fn protocol_0_text_globals() {
    use RefKind::Global as G;
    let scan = scan(P0).unwrap();
    check_invariants(P0, &scan);
    assert_eq!(scan.protocol, 0);
    assert_eq!(
        names(&scan),
        [
            ("collections", "OrderedDict", G),
            ("datetime", "date", G),
            ("_codecs", "encode", G),
            ("__builtin__", "set", G),
            ("decimal", "Decimal", G),
            ("functools", "partial", G),
            ("__builtin__", "max", G),
            ("__builtin__", "frozenset", G),
        ]
    );
    let offsets: Vec<usize> = scan.globals.iter().map(|g| g.offset).collect();
    assert_eq!(offsets, [5, 50, 69, 128, 208, 250, 274, 333]);
}

#[test]
fn protocol_2_binary_globals() {
    let scan = scan(P2).unwrap();
    check_invariants(P2, &scan);
    assert_eq!(scan.protocol, 2);
    assert_eq!(names(&scan), names(&super::scan(P0).unwrap()));
}

#[test]
fn protocol_4_stack_globals_from_memo() {
    use RefKind::StackGlobal as S;
    let scan = scan(P4).unwrap();
    check_invariants(P4, &scan);
    assert_eq!(scan.protocol, 4);
    assert_eq!(
        names(&scan),
        [
            ("collections", "OrderedDict", S),
            ("datetime", "date", S),
            ("decimal", "Decimal", S),
            ("functools", "partial", S),
            ("builtins", "max", S),
        ]
    );
}

#[test]
fn protocol_5_out_of_band_buffers() {
    let scan = scan(P5_OOB).unwrap();
    assert_eq!(scan.protocol, 5);
    assert_eq!(scan.out_of_band_buffers, 2);
    assert!(scan.globals.is_empty());
}

#[test]
fn cloudpickle_subimports_through_the_memo() {
    let scan = scan(CLOUD).unwrap();
    check_invariants(CLOUD, &scan);
    // `os` is named once, memoized, and reaches its `subimport` through BINGET, as does the
    // `subimport` global itself.
    assert_eq!(
        subimports(&scan),
        [
            ("collections.abc", false),
            ("os", false),
            ("collections", false)
        ]
    );
    let offsets: Vec<usize> = scan.subimports.iter().map(|s| s.offset).collect();
    assert_eq!(offsets, [584, 612, 622]);
}

#[test]
fn cloudpickle_dynamic_subimport() {
    let scan = scan(DYN).unwrap();
    check_invariants(DYN, &scan);
    assert_eq!(subimports(&scan), [("tk_dyn", true)]);
}

#[test]
fn every_truncation_of_a_real_pickle_is_an_error() {
    for data in REAL {
        for end in 0..data.len() {
            match scan(&data[..end]) {
                Err(PickleError::Truncated { .. } | PickleError::NoStop) => {}
                other => panic!("prefix of {end} bytes: {other:?}"),
            }
        }
    }
}

#[test]
fn trailing_bytes_after_stop_are_ignored() {
    let data = cat(&[P4, b"\xff garbage"]);
    assert_eq!(scan(&data).unwrap(), scan(P4).unwrap());
}

// ── stack effects, one opcode at a time ──────────────────────────────────────────────────

#[test]
fn every_opcode_has_the_stack_effect_of_pickletools() {
    let n8 = |n: u64| n.to_le_bytes();
    let long_binunicode = cat(&[b"X\x03\0\0\0abc"]);
    // (opcode, stream up to STOP, stack depth, open marks)
    let cases: Vec<(Op, Vec<u8>, usize, usize)> = vec![
        (Op::INT, b"I12\n".to_vec(), 1, 0),
        (Op::BININT, b"J\x01\0\0\x80".to_vec(), 1, 0),
        (Op::BININT1, b"K\x01".to_vec(), 1, 0),
        (Op::BININT2, b"M\x01\x02".to_vec(), 1, 0),
        (Op::LONG, b"L12345678901234567890L\n".to_vec(), 1, 0),
        (Op::LONG1, b"\x8a\x02\x01\x00".to_vec(), 1, 0),
        (Op::LONG4, b"\x8b\x02\0\0\0\x01\x00".to_vec(), 1, 0),
        (Op::STRING, b"S'a\\'b'\n".to_vec(), 1, 0),
        (Op::BINSTRING, b"T\x03\0\0\0abc".to_vec(), 1, 0),
        (Op::SHORT_BINSTRING, b"U\x03abc".to_vec(), 1, 0),
        (Op::BINBYTES, b"B\x03\0\0\0abc".to_vec(), 1, 0),
        (Op::SHORT_BINBYTES, b"C\x03abc".to_vec(), 1, 0),
        (Op::BINBYTES8, cat(&[b"\x8e", &n8(3), b"abc"]), 1, 0),
        (Op::BYTEARRAY8, cat(&[b"\x96", &n8(3), b"abc"]), 1, 0),
        (Op::NEXT_BUFFER, b"\x97".to_vec(), 1, 0),
        (Op::READONLY_BUFFER, b"\x97\x98".to_vec(), 1, 0),
        (Op::NONE, b"N".to_vec(), 1, 0),
        (Op::NEWTRUE, b"\x88".to_vec(), 1, 0),
        (Op::NEWFALSE, b"\x89".to_vec(), 1, 0),
        (Op::UNICODE, b"Vabc\\u20ac\n".to_vec(), 1, 0),
        (Op::SHORT_BINUNICODE, su("abc"), 1, 0),
        (Op::BINUNICODE, long_binunicode, 1, 0),
        (Op::BINUNICODE8, cat(&[b"\x8d", &n8(3), b"abc"]), 1, 0),
        (Op::FLOAT, b"F1.5\n".to_vec(), 1, 0),
        (Op::BINFLOAT, b"G\x3f\xf8\0\0\0\0\0\0".to_vec(), 1, 0),
        (Op::EMPTY_LIST, b"]".to_vec(), 1, 0),
        (Op::APPEND, b"]Na".to_vec(), 1, 0),
        (Op::APPENDS, b"](NNe".to_vec(), 1, 0),
        (Op::LIST, b"(NNl".to_vec(), 1, 0),
        (Op::EMPTY_TUPLE, b")".to_vec(), 1, 0),
        (Op::TUPLE, b"(NNt".to_vec(), 1, 0),
        (Op::TUPLE1, b"N\x85".to_vec(), 1, 0),
        (Op::TUPLE2, b"NN\x86".to_vec(), 1, 0),
        (Op::TUPLE3, b"NNN\x87".to_vec(), 1, 0),
        (Op::EMPTY_DICT, b"}".to_vec(), 1, 0),
        (Op::DICT, b"(NNd".to_vec(), 1, 0),
        (Op::SETITEM, b"}NNs".to_vec(), 1, 0),
        (Op::SETITEMS, b"}(NNNNu".to_vec(), 1, 0),
        (Op::EMPTY_SET, b"\x8f".to_vec(), 1, 0),
        (Op::ADDITEMS, b"\x8f(NN\x90".to_vec(), 1, 0),
        (Op::FROZENSET, b"(NN\x91".to_vec(), 1, 0),
        (Op::POP, b"NN0".to_vec(), 1, 0),
        (Op::DUP, b"N2".to_vec(), 2, 0),
        (Op::MARK, b"N(".to_vec(), 1, 1),
        (Op::POP_MARK, b"N(NN1".to_vec(), 1, 0),
        (Op::GET, b"Np0\ng0\n".to_vec(), 2, 0),
        (Op::BINGET, b"Nq\x07h\x07".to_vec(), 2, 0),
        (Op::LONG_BINGET, b"Nr\0\0\x01\0j\0\0\x01\0".to_vec(), 2, 0),
        (Op::PUT, b"Np12\n".to_vec(), 1, 0),
        (Op::BINPUT, b"Nq\x01".to_vec(), 1, 0),
        (Op::LONG_BINPUT, b"Nr\x01\0\0\0".to_vec(), 1, 0),
        (Op::MEMOIZE, b"N\x94h\x00".to_vec(), 2, 0),
        (Op::EXT1, b"\x82\x01".to_vec(), 1, 0),
        (Op::EXT2, b"\x83\x01\x00".to_vec(), 1, 0),
        (Op::EXT4, b"\x84\x01\0\0\0".to_vec(), 1, 0),
        (Op::GLOBAL, global("mod", "name"), 1, 0),
        (
            Op::STACK_GLOBAL,
            cat(&[&su("mod"), &su("name"), b"\x93"]),
            1,
            0,
        ),
        (Op::REDUCE, cat(&[&global("mod", "f"), b")R"]), 1, 0),
        (Op::BUILD, b"NNb".to_vec(), 1, 0),
        (Op::INST, b"(NNimod\nname\n".to_vec(), 1, 0),
        (Op::OBJ, cat(&[b"(", &global("mod", "C"), b"No"]), 1, 0),
        (Op::NEWOBJ, cat(&[&global("mod", "C"), b")\x81"]), 1, 0),
        (Op::NEWOBJ_EX, cat(&[&global("mod", "C"), b")}\x92"]), 1, 0),
        (Op::PROTO, b"\x80\x05".to_vec(), 0, 0),
        (Op::FRAME, cat(&[b"\x95", &n8(2), b"N"]), 1, 0),
        (Op::PERSID, b"Pid\n".to_vec(), 1, 0),
        (Op::BINPERSID, b"NQ".to_vec(), 1, 0),
    ];
    let mut covered: Vec<Op> = cases.iter().map(|c| c.0).collect();
    covered.push(Op::STOP);
    for op in Op::ALL {
        assert!(covered.contains(op), "no stack-effect case for {op:?}");
    }
    for (op, stream, depth, marks) in cases {
        assert!(stream.contains(&op.byte()), "{op:?} case does not use it");
        let data = cat(&[&stream, b"."]);
        assert_eq!(depths(&data), Ok((depth, marks)), "{op:?}");
    }
}

#[test]
fn opcode_table_is_consistent() {
    assert_eq!(
        Op::ALL.len(),
        68,
        "pickletools defines 68 opcodes for protocols 0-5"
    );
    for byte in 0..=255u8 {
        if let Some(op) = Op::from_byte(byte) {
            assert_eq!(op.byte(), byte);
        }
    }
    let known = (0..=255u8).filter(|&b| Op::from_byte(b).is_some()).count();
    assert_eq!(known, Op::ALL.len());
}

#[test]
fn pop_removes_a_mark_on_top_of_the_stack() {
    // CPython's load_pop: an empty segment above the innermost mark pops the mark.
    assert_eq!(depths(b"N(0."), Ok((1, 0)));
    assert_eq!(depths(b"N(N0."), Ok((1, 1)));
    assert_eq!(
        scan(b"0."),
        Err(PickleError::StackUnderflow {
            opcode: "POP",
            offset: 0
        })
    );
}

#[test]
fn values_below_a_mark_are_out_of_reach() {
    for (data, opcode, offset) in [
        (&b"](Na."[..], "APPEND", 3),
        (b"N(2.", "DUP", 2),
        (b"N(p0\n.", "PUT", 2),
        (b"N(\x94.", "MEMOIZE", 2),
        (b"NN(\x86.", "TUPLE2", 3),
        (b"N(N0\x85.", "TUPLE1", 4),
        (b"N(b.", "BUILD", 2),
        (b"N(\x98.", "READONLY_BUFFER", 2),
        (b"(NNe.", "APPENDS", 3),
        (b"(o.", "OBJ", 1),
        (b"N(.", "STOP", 2),
    ] {
        assert_eq!(
            scan(data),
            Err(PickleError::StackUnderflow { opcode, offset }),
            "{opcode}"
        );
    }
}

#[test]
fn mark_errors() {
    for (data, opcode) in [
        (&b"NNt."[..], "TUPLE"),
        (b"]Ne.", "APPENDS"),
        (b"NNd.", "DICT"),
        (b"}NNu.", "SETITEMS"),
        (b"1.", "POP_MARK"),
        (b"Nimod\nC\n.", "INST"),
    ] {
        assert!(
            matches!(scan(data), Err(PickleError::MissingMark { opcode: o, .. }) if o == opcode),
            "{opcode}: {:?}",
            scan(data)
        );
    }
    for data in [&b"(Nd."[..], b"}(NNNu."] {
        assert!(matches!(scan(data), Err(PickleError::BadArgument { .. })));
    }
}

// ── memo ─────────────────────────────────────────────────────────────────────────────────

#[test]
fn memo_round_trips_keep_shapes() {
    // Module and name stored with each PUT flavour and read back with each GET flavour.
    let streams = [
        cat(&[&su("os"), b"p0\n0", &su("path"), b"p1\n0g0\ng1\n\x93."]),
        cat(&[&su("os"), b"q\x050", &su("path"), b"q\x060h\x05h\x06\x93."]),
        cat(&[
            &su("os"),
            b"r\0\0\x01\x000",
            &su("path"),
            b"r\x01\0\x01\x000j\0\0\x01\0j\x01\0\x01\0\x93.",
        ]),
        cat(&[&su("os"), b"\x940", &su("path"), b"\x940h\x00h\x01\x93."]),
        // DUP copies the shape too.
        cat(&[
            &su("os"),
            b"2\x85\x94\x30\x30h\x00\x30",
            &su("os"),
            &su("path"),
            b"\x93.",
        ]),
    ];
    for data in &streams {
        let scan = scan(data).unwrap();
        check_invariants(data, &scan);
        assert_eq!(
            names(&scan),
            [("os", "path", RefKind::StackGlobal)],
            "{data:?}"
        );
    }
}

#[test]
fn memoize_counts_distinct_keys() {
    // MEMOIZE stores at len(memo), the number of distinct keys: neither the highest key
    // nor a PUT that overwrites one moves it.
    let data = cat(&[
        &su("a"),
        b"p5\n0",
        &su("b"),
        b"p5\n0",
        &su("mod"),
        b"\x94",
        &su("name"),
        b"\x94\x30\x30h\x01h\x02\x93.",
    ]);
    assert_eq!(
        names(&scan(&data).unwrap()),
        [("mod", "name", RefKind::StackGlobal)]
    );
}

#[test]
fn missing_memo_keys_are_errors() {
    assert_eq!(
        scan(b"Np1\ng2\n."),
        Err(PickleError::MissingMemo { key: 2, offset: 4 })
    );
    assert_eq!(
        scan(b"j\x01\x02\x03\x04."),
        Err(PickleError::MissingMemo {
            key: 0x0403_0201,
            offset: 0
        })
    );
    assert!(matches!(
        scan(b"Np-1\n."),
        Err(PickleError::BadArgument { opcode: "PUT", .. })
    ));
    assert!(matches!(
        scan(b"Npx\n."),
        Err(PickleError::BadArgument { opcode: "PUT", .. })
    ));
    // Python's int() tolerates surrounding whitespace and a plus sign.
    assert_eq!(depths(b"Np +7 \ng7\n."), Ok((2, 0)));
}

// ── globals ──────────────────────────────────────────────────────────────────────────────

#[test]
fn global_and_inst_lines() {
    let data = cat(&[
        b"\x80\x02",
        &global("os", "system"),
        b"(S'ls'\ntR(S'x'\nicollections\nOrderedDict\n0N.",
    ]);
    let scan = scan(&data).unwrap();
    check_invariants(&data, &scan);
    assert_eq!(
        names(&scan),
        [
            ("os", "system", RefKind::Global),
            ("collections", "OrderedDict", RefKind::Inst)
        ]
    );
    assert_eq!(scan.globals[0].offset, 2);
    for bad in [&b"c\nname\nN."[..], b"cmod\n\nN.", b"cmo\xffd\nname\nN."] {
        assert!(matches!(
            super::scan(bad),
            Err(PickleError::BadArgument {
                opcode: "GLOBAL",
                ..
            })
        ));
    }
}

#[test]
fn stack_global_decodes_every_string_encoding() {
    let cases: [(&[u8], &str); 6] = [
        (b"U\x0bcollectionsU\x05deque", "SHORT_BINSTRING"),
        (b"T\x0b\0\0\0collectionsT\x05\0\0\0deque", "BINSTRING"),
        (b"S'collections'\nS\"deque\"\n", "STRING"),
        (b"Vcollections\nVde\\u0071ue\n", "UNICODE"),
        (
            b"X\x0b\0\0\0collections\x8d\x05\0\0\0\0\0\0\0deque",
            "BINUNICODE",
        ),
        (b"S'coll\\x65ctions'\nS'\\144eque'\n", "STRING escapes"),
    ];
    for (strings, what) in cases {
        let data = cat(&[strings, b"\x93."]);
        assert_eq!(
            names(&scan(&data).unwrap()),
            [("collections", "deque", RefKind::StackGlobal)],
            "{what}"
        );
    }
}

#[test]
fn stack_global_rejects_what_it_cannot_name() {
    for data in [
        &b"\x80\x04K\x01N\x93."[..],                // not strings
        b"\x80\x04C\x02osC\x04path\x93.",           // bytes
        b"\x80\x04\x8c\x02os\x8c\x02\xff\xfe\x93.", // invalid UTF-8
        b"\x80\x04Vos\nV\\ud800\n\x93.",            // lone surrogate
        b"\x80\x04S'os'\nS'\\x4'\n\x93.",           // broken \x escape
    ] {
        assert!(
            matches!(
                scan(data),
                Err(PickleError::BadArgument {
                    opcode: "STACK_GLOBAL",
                    ..
                })
            ),
            "{data:?}: {:?}",
            scan(data)
        );
    }
    // A name string of any length is skipped cheaply, but one longer than the limit is
    // refused rather than copied into the result.
    let long = "x".repeat(MAX_STACK_NAME_LEN + 1);
    let data = cat(&[
        b"X",
        &u32::try_from(long.len()).unwrap().to_le_bytes(),
        long.as_bytes(),
        &su("f"),
        b"\x93.",
    ]);
    assert!(matches!(
        scan(&data),
        Err(PickleError::BadArgument {
            opcode: "STACK_GLOBAL",
            ..
        })
    ));
    let len = u32::try_from(long.len()).unwrap().to_le_bytes();
    let data = cat(&[&su("x"), b"X", &len, long.as_bytes(), b"0N."]);
    assert!(scan(&data).is_ok());
}

#[test]
fn extension_codes() {
    let scan = scan(b"\x80\x02\x82\x07\x83\x00\x01\x84\xff\xff\xff\x7f\x87.").unwrap();
    assert_eq!(scan.extension_codes, [7, 256, 0x7fff_ffff]);
    for data in [
        &b"\x82\x00."[..],
        b"\x83\x00\x00.",
        b"\x84\xff\xff\xff\xff.",
    ] {
        assert!(matches!(
            super::scan(data),
            Err(PickleError::BadArgument { .. })
        ));
    }
}

// ── cloudpickle reconstructors ───────────────────────────────────────────────────────────

#[test]
fn subimport_detection() {
    type Case = (Vec<u8>, Vec<(&'static str, bool)>);
    let sub = global("cloudpickle.cloudpickle", "subimport");
    let dynamic = global("cloudpickle.cloudpickle", "dynamic_subimport");
    let cases: Vec<Case> = vec![
        (
            cat(&[&sub, &su("numpy"), b"\x85R."]),
            vec![("numpy", false)],
        ),
        (
            cat(&[&sub, b"(", &su("numpy"), b"tR."]),
            vec![("numpy", false)],
        ),
        (
            cat(&[&dynamic, &su("mymod"), b"}\x86R."]),
            vec![("mymod", true)],
        ),
        (
            cat(&[&dynamic, b"(", &su("mymod"), b"}tR."]),
            vec![("mymod", true)],
        ),
        // Vendored copies reconstruct modules the same way.
        (
            cat(&[
                &global("joblib.externals.cloudpickle.cloudpickle", "subimport"),
                &su("scipy"),
                b"\x85R.",
            ]),
            vec![("scipy", false)],
        ),
        // Callable and argument both read back from the memo.
        (
            cat(&[&sub, b"q\x00", &su("json"), b"q\x01\x85R0h\x00h\x01\x85R."]),
            vec![("json", false), ("json", false)],
        ),
        // Not cloudpickle, not a string, not a tuple, no arguments: nothing to report.
        (
            cat(&[&global("mylib", "subimport"), &su("numpy"), b"\x85R."]),
            vec![],
        ),
        (
            cat(&[&global("cloudpickle", "other"), &su("numpy"), b"\x85R."]),
            vec![],
        ),
        (cat(&[&sub, b"K\x01\x85R."]), vec![]),
        (cat(&[&sub, &su("numpy"), b"R."]), vec![]),
        (cat(&[&sub, b")R."]), vec![]),
        (cat(&[&sub, b"C\x05numpy\x85R."]), vec![]),
    ];
    for (data, expected) in &cases {
        let scan = scan(data).unwrap();
        check_invariants(data, &scan);
        assert_eq!(&subimports(&scan), expected, "{data:?}");
    }
}

// ── lengths and truncation ───────────────────────────────────────────────────────────────

#[test]
fn huge_length_fields_fail_fast_without_allocating() {
    let huge = (1u64 << 60).to_le_bytes();
    for opcode in [0x8e, 0x8d, 0x96] {
        let data = cat(&[&[opcode], &huge, b"abc."]);
        assert!(matches!(
            scan(&data),
            Err(PickleError::Truncated { offset: 0, .. })
        ));
    }
    let data = cat(&[b"\x95", &u64::MAX.to_le_bytes(), b"N."]);
    assert!(matches!(
        scan(&data),
        Err(PickleError::Truncated {
            opcode: "FRAME",
            ..
        })
    ));
    for data in [
        &b"X\xff\xff\xff\xffabc."[..],
        b"B\xff\xff\xff\xff.",
        b"T\xff\xff\xff\x7f.",
    ] {
        assert!(matches!(scan(data), Err(PickleError::Truncated { .. })));
    }
    for data in [&b"T\xff\xff\xff\xff."[..], b"\x8b\xfe\xff\xff\xff."] {
        assert!(matches!(scan(data), Err(PickleError::BadArgument { .. })));
    }
}

#[test]
fn large_payloads_are_skipped() {
    // 100 MB in 1 MB BINBYTES8 payloads: one opcode per megabyte, nothing copied.
    const CHUNK: usize = 1 << 20;
    let mut data = vec![0u8; 100 * (CHUNK + 9) + 4];
    data[0] = b'(';
    let mut at = 1;
    for _ in 0..100 {
        data[at] = 0x8e;
        data[at + 1..at + 9].copy_from_slice(&(CHUNK as u64).to_le_bytes());
        at += 9 + CHUNK;
    }
    data[at..at + 2].copy_from_slice(b"l.");
    let start = std::time::Instant::now();
    assert!(scan(&data).is_ok());
    assert!(start.elapsed() < std::time::Duration::from_millis(100));
}

#[test]
fn stack_entries_stay_small() {
    // The stack grows with the input (a stream of `N`s is one entry per byte), so the
    // entry size is the scanner's memory per input byte in the worst case.
    assert!(std::mem::size_of::<Shape>() <= 24);
}

#[test]
fn deep_nesting_does_not_recurse() {
    let mut data = vec![b')'];
    data.extend(std::iter::repeat_n(0x85, 1_000_000));
    data.extend(std::iter::repeat_n(b'(', 1_000_000));
    data.push(b'.');
    assert_eq!(depths(&data), Ok((1, 1_000_000)));
}

#[test]
fn other_errors() {
    assert_eq!(scan(b""), Err(PickleError::NoStop));
    assert_eq!(scan(b"N"), Err(PickleError::NoStop));
    assert_eq!(
        scan(b"N\xff."),
        Err(PickleError::UnknownOpcode {
            byte: 0xff,
            offset: 1
        })
    );
    assert_eq!(
        scan(b"."),
        Err(PickleError::StackUnderflow {
            opcode: "STOP",
            offset: 0
        })
    );
    assert!(matches!(
        scan(b"\x80\x06N."),
        Err(PickleError::BadArgument {
            opcode: "PROTO",
            ..
        })
    ));
    assert!(matches!(
        scan(b"S'abc\n."),
        Err(PickleError::BadArgument {
            opcode: "STRING",
            ..
        })
    ));
    assert!(matches!(
        scan(b"S\n."),
        Err(PickleError::BadArgument {
            opcode: "STRING",
            ..
        })
    ));
    assert_eq!(
        scan(b"N\x8c\x05os.").unwrap_err().to_string(),
        "the pickle stream ends inside opcode `SHORT_BINUNICODE` at byte 1"
    );
}

// ── property tests ───────────────────────────────────────────────────────────────────────

/// One opcode from the real set with a plausible small argument, so random streams get
/// past the first few bytes and exercise the stack and memo logic.
fn opcode_chunk() -> impl Strategy<Value = Vec<u8>> {
    let op = prop::sample::select(Op::ALL.iter().map(|op| op.byte()).collect::<Vec<_>>());
    let arg = prop::collection::vec(
        prop_oneof![
            Just(0u8),
            Just(1),
            Just(2),
            Just(b'\n'),
            Just(b'a'),
            any::<u8>()
        ],
        0..6,
    );
    (
        op,
        arg,
        prop::option::of(prop::sample::select(vec![
            "os",
            "path",
            "subimport",
            "cloudpickle",
        ])),
    )
        .prop_map(|(op, arg, text)| {
            let mut out = vec![op];
            match text {
                Some(text) if op == 0x8c => {
                    out.push(u8::try_from(text.len()).unwrap());
                    out.extend_from_slice(text.as_bytes());
                }
                _ => out.extend(arg),
            }
            out
        })
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(data: &mut Vec<u8>, mutation: &Mutation) {
    let len = data.len();
    match *mutation {
        Mutation::Set(i, b) if len > 0 => data[i % len] = b,
        Mutation::Insert(i, b) => data.insert(i % (len + 1), b),
        Mutation::Remove(i) if len > 0 => {
            data.remove(i % len);
        }
        Mutation::Truncate(i) => data.truncate(i % (len + 1)),
        _ => {}
    }
}

fn scan_checked(data: &[u8]) {
    if let Ok(scan) = scan(data) {
        check_invariants(data, &scan);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        scan_checked(&data);
    }

    #[test]
    fn random_opcode_streams_never_panic(
        chunks in prop::collection::vec(opcode_chunk(), 0..64),
        proto in 0u8..7,
    ) {
        let mut data = vec![0x80, proto];
        data.extend(chunks.concat());
        data.push(b'.');
        scan_checked(&data);
    }

    #[test]
    fn mutated_real_pickles_never_panic(
        which in 0..REAL.len(),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let mut data = REAL[which].to_vec();
        for m in &mutations {
            apply(&mut data, m);
        }
        scan_checked(&data);
    }
}
