//! Hand-assembled bytecode against fake opcode tables. The numbers deliberately differ from
//! any real `CPython`'s in places: the scanner must take everything from the table.

use proptest::prelude::*;

use super::*;

type Spec<'a> = (&'a str, u8, bool, u8);

/// 3.11-like: `LOAD_GLOBAL` `arg >> 1`, `LOAD_ATTR` plain, `LOAD_METHOD` and PRECALL exist.
const PY311: &[Spec] = &[
    ("CACHE", 0, false, 0),
    ("POP_TOP", 1, false, 0),
    ("PUSH_NULL", 2, false, 0),
    ("NOP", 9, false, 0),
    ("RETURN_VALUE", 83, false, 0),
    ("LOAD_CONST", 100, true, 0),
    ("LOAD_NAME", 101, true, 0),
    ("BUILD_TUPLE", 102, true, 0),
    ("LOAD_ATTR", 106, true, 4),
    ("IMPORT_NAME", 108, true, 0),
    ("IMPORT_FROM", 109, true, 0),
    ("LOAD_GLOBAL", 116, true, 5),
    ("LOAD_FAST", 124, true, 0),
    ("STORE_FAST", 125, true, 0),
    ("EXTENDED_ARG", 144, true, 0),
    ("LOAD_METHOD", 160, true, 10),
    ("PRECALL", 166, true, 1),
    ("CALL", 171, true, 4),
    ("KW_NAMES", 172, true, 0),
];

/// 3.12-like with shuffled numbers: `LOAD_ATTR` `arg >> 1`, no `LOAD_METHOD` or PRECALL.
const PY312: &[Spec] = &[
    ("CACHE", 0, false, 0),
    ("POP_TOP", 31, false, 0),
    ("PUSH_NULL", 12, false, 0),
    ("NOP", 30, false, 0),
    ("LOAD_CONST", 200, true, 0),
    ("LOAD_NAME", 7, true, 0),
    ("BUILD_TUPLE", 150, true, 0),
    ("LOAD_ATTR", 41, true, 9),
    ("IMPORT_NAME", 230, true, 0),
    ("LOAD_GLOBAL", 5, true, 4),
    ("LOAD_FAST", 60, true, 0),
    ("EXTENDED_ARG", 99, true, 0),
    ("CALL", 3, true, 3),
    ("KW_NAMES", 4, true, 0),
];

/// 3.10-like: no caches, `LOAD_GLOBAL` plain, `CALL_FUNCTION/CALL_METHOD`.
const PY310: &[Spec] = &[
    ("POP_TOP", 1, false, 0),
    ("LOAD_CONST", 100, true, 0),
    ("LOAD_ATTR", 106, true, 0),
    ("IMPORT_NAME", 108, true, 0),
    ("LOAD_GLOBAL", 116, true, 0),
    ("EXTENDED_ARG", 144, true, 0),
    ("LOAD_METHOD", 160, true, 0),
    ("CALL_METHOD", 161, true, 0),
    ("CALL_FUNCTION", 131, true, 0),
];

/// 3.14-like: the level of an import comes from `LOAD_SMALL_INT`.
const PY314: &[Spec] = &[
    ("LOAD_CONST", 82, true, 0),
    ("LOAD_SMALL_INT", 93, true, 0),
    ("IMPORT_NAME", 72, true, 0),
    ("LOAD_GLOBAL", 91, true, 4),
    ("LOAD_ATTR", 80, true, 9),
    ("CALL_KW", 54, true, 3),
    ("CALL", 53, true, 3),
    ("PUSH_NULL", 33, false, 0),
];

fn table(version: (u8, u8), specs: &[Spec]) -> OpcodeTable {
    let mut names: Vec<String> = (0..OPCODE_COUNT).map(|op| format!("<{op}>")).collect();
    let mut has_arg = vec![false; OPCODE_COUNT];
    let mut caches = vec![0; OPCODE_COUNT];
    for &(name, op, arg, cache) in specs {
        names[usize::from(op)] = name.to_owned();
        has_arg[usize::from(op)] = arg;
        caches[usize::from(op)] = cache;
    }
    OpcodeTable::new(version, names, has_arg, caches).expect("valid table")
}

/// Assemble like the compiler: `EXTENDED_ARG` prefixes for wide arguments, zeroed caches.
fn asm(table: &OpcodeTable, program: &[(&str, u32)]) -> Vec<u8> {
    let ext = table.opcode("EXTENDED_ARG");
    let mut code = Vec::new();
    for &(name, arg) in program {
        let op = table
            .opcode(name)
            .unwrap_or_else(|| panic!("{name} not in table"));
        if table.has_arg(op) {
            for shift in [24, 16, 8] {
                if arg >> shift != 0 {
                    code.extend([ext.expect("EXTENDED_ARG"), (arg >> shift) as u8]);
                }
            }
        }
        code.extend([op, arg as u8]);
        for _ in 0..table.cache_entries(op) {
            code.extend([0, 0]);
        }
    }
    code
}

fn unit(qualname: &str, code: Vec<u8>, names: &[&str], consts: Vec<Const>) -> CodeUnit {
    CodeUnit {
        qualname: qualname.to_owned(),
        filename: "<test>".to_owned(),
        firstlineno: 1,
        code,
        names: names.iter().map(|n| (*n).to_owned()).collect(),
        varnames: Vec::new(),
        consts,
    }
}

fn strs(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn str_tuple(items: &[&str]) -> Const {
    Const::Tuple(items.iter().map(|s| Const::Str((*s).to_owned())).collect())
}

fn import(module: &str, level: u32, fromlist: &[&str]) -> Finding {
    Finding::Import {
        module: module.to_owned(),
        level,
        fromlist: strs(fromlist),
    }
}

fn chain(global: &str, attrs: &[&str]) -> Finding {
    Finding::GlobalChain {
        global: global.to_owned(),
        attrs: strs(attrs),
    }
}

fn dynamic(module: &str, callee: &str) -> Finding {
    Finding::DynamicImport {
        module: module.to_owned(),
        callee: callee.to_owned(),
    }
}

fn findings(unit: &CodeUnit, table: &OpcodeTable) -> Vec<Finding> {
    scan(unit, table)
        .expect("scan")
        .into_iter()
        .map(|l| l.finding)
        .collect()
}

fn ins(offset: usize, opcode: u8, arg: Option<u32>) -> Instruction {
    Instruction {
        offset,
        opcode,
        arg,
    }
}

// ── decoding ────────────────────────────────────────────────────────────────────────────────

#[test]
fn decode_arguments_and_argless_opcodes() {
    let t = table((3, 10), PY310);
    // POP_TOP's argument byte is ignored: dis reports None for it.
    assert_eq!(
        decode(&[100, 7, 1, 55], &t).unwrap(),
        vec![ins(0, 100, Some(7)), ins(2, 1, None)]
    );
    assert_eq!(decode(&[], &t).unwrap(), vec![]);
}

#[test]
fn decode_extended_arg_accumulates_and_is_reported() {
    let t = table((3, 10), PY310);
    let code = [144, 1, 144, 2, 100, 3, 100, 4];
    assert_eq!(
        decode(&code, &t).unwrap(),
        vec![
            ins(0, 144, Some(1)),
            ins(2, 144, Some(0x102)),
            ins(4, 100, Some(0x10203)),
            // The extension applies to the next instruction only.
            ins(6, 100, Some(4)),
        ]
    );
    // An argless opcode in between resets the extension too.
    assert_eq!(
        decode(&[144, 1, 1, 0, 100, 5], &t).unwrap(),
        vec![ins(0, 144, Some(1)), ins(2, 1, None), ins(4, 100, Some(5))]
    );
    // Four prefixes overflow 32 bits: no panic, high bits dropped.
    let wide = decode(&[144, 0xff, 144, 0xff, 144, 0xff, 144, 0xff, 100, 0xff], &t).unwrap();
    assert_eq!(wide[4].arg, Some(u32::MAX));
}

#[test]
fn decode_skips_inline_caches_whatever_they_hold() {
    let t = table((3, 11), PY311);
    let mut code = vec![116, 3];
    code.extend([0xff; 10]); // five cache units of LOAD_GLOBAL, junk that must not decode
    code.extend([1, 0]);
    assert_eq!(
        decode(&code, &t).unwrap(),
        vec![ins(0, 116, Some(3)), ins(12, 1, None)]
    );
    // A CACHE opcode outside a cache run is an instruction like any other, as in dis.
    assert_eq!(decode(&[0, 0], &t).unwrap(), vec![ins(0, 0, None)]);
    // Caches cut short by the end of the code: the instruction is kept, nothing else.
    assert_eq!(
        decode(&[106, 1, 0, 0], &t).unwrap(),
        vec![ins(0, 106, Some(1))]
    );
}

#[test]
fn decode_rejects_odd_length() {
    let t = table((3, 11), PY311);
    assert_eq!(
        decode(&[100, 0, 1], &t),
        Err(BytecodeError::OddLength {
            qualname: "<bytecode>".to_owned(),
            len: 3
        })
    );
}

// ── table ───────────────────────────────────────────────────────────────────────────────────

#[test]
fn table_checks_lengths_and_recognised_names() {
    let names = |n: usize| (0..n).map(|op| format!("<{op}>")).collect::<Vec<_>>();
    let short = OpcodeTable::new((3, 11), names(255), vec![false; 256], vec![0; 256]);
    assert!(matches!(short, Err(BytecodeError::BadTable(m)) if m.contains("`names` has 255")));
    let long = OpcodeTable::new((3, 11), names(256), vec![false; 256], vec![0; 300]);
    assert!(matches!(long, Err(BytecodeError::BadTable(m)) if m.contains("`cache_entries`")));

    let mut dup = names(256);
    dup[100] = "IMPORT_NAME".to_owned();
    dup[101] = "IMPORT_NAME".to_owned();
    let dup = OpcodeTable::new((3, 11), dup, vec![true; 256], vec![0; 256]);
    assert!(matches!(dup, Err(BytecodeError::BadTable(m)) if m.contains("both 100 and 101")));

    let mut argless = names(256);
    argless[5] = "LOAD_GLOBAL".to_owned();
    let argless = OpcodeTable::new((3, 11), argless, vec![false; 256], vec![0; 256]);
    assert!(matches!(argless, Err(BytecodeError::BadTable(m)) if m.contains("LOAD_GLOBAL")));
}

// ── imports ─────────────────────────────────────────────────────────────────────────────────

#[test]
fn import_statements() {
    for (version, specs) in [((3, 11), PY311), ((3, 12), PY312)] {
        let t = table(version, specs);
        let code = asm(
            &t,
            &[
                // import a.b.c
                ("LOAD_CONST", 0),
                ("LOAD_CONST", 1),
                ("IMPORT_NAME", 0),
                ("POP_TOP", 0),
                // from x import y, z
                ("LOAD_CONST", 0),
                ("LOAD_CONST", 2),
                ("IMPORT_NAME", 1),
                ("POP_TOP", 0),
                // from .. import sib
                ("LOAD_CONST", 3),
                ("LOAD_CONST", 4),
                ("IMPORT_NAME", 2),
                ("POP_TOP", 0),
                // from x import *
                ("LOAD_CONST", 0),
                ("LOAD_CONST", 5),
                ("IMPORT_NAME", 1),
                ("POP_TOP", 0),
            ],
        );
        let u = unit(
            "f",
            code,
            &["a.b.c", "x", ""],
            vec![
                Const::Int(0),
                Const::None,
                str_tuple(&["y", "z"]),
                Const::Int(2),
                str_tuple(&["sib"]),
                str_tuple(&["*"]),
            ],
        );
        assert_eq!(
            findings(&u, &t),
            vec![
                import("a.b.c", 0, &[]),
                import("x", 0, &["y", "z"]),
                import("", 2, &["sib"]),
                import("x", 0, &["*"]),
            ],
            "{version:?}"
        );
    }
}

#[test]
fn import_operands_behind_extended_arg() {
    // More than 256 constants: LOAD_CONST needs EXTENDED_ARG, which must not break adjacency.
    let t = table((3, 11), PY311);
    let mut consts = vec![Const::Other; 300];
    consts[290] = Const::Int(1);
    consts[299] = str_tuple(&["thing"]);
    let names: Vec<String> = (0..270).map(|i| format!("n{i}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let code = asm(
        &t,
        &[
            ("LOAD_CONST", 290),
            ("NOP", 0),
            ("LOAD_CONST", 299),
            ("IMPORT_NAME", 260),
        ],
    );
    assert_eq!(
        findings(&unit("f", code, &name_refs, consts), &t),
        vec![import("n260", 1, &["thing"])]
    );
}

#[test]
fn import_level_from_load_small_int() {
    let t = table((3, 14), PY314);
    let code = asm(
        &t,
        &[("LOAD_SMALL_INT", 1), ("LOAD_CONST", 0), ("IMPORT_NAME", 0)],
    );
    let u = unit("f", code, &["mod"], vec![str_tuple(&["x"])]);
    assert_eq!(findings(&u, &t), vec![import("mod", 1, &["x"])]);
}

#[test]
fn import_without_constant_operands_is_still_reported() {
    let t = table((3, 11), PY311);
    let code = asm(&t, &[("LOAD_FAST", 0), ("IMPORT_NAME", 0)]);
    assert_eq!(
        findings(&unit("f", code, &["m"], vec![]), &t),
        vec![import("m", 0, &[])]
    );
    // At offset 0 there is nothing before it at all.
    let code = asm(&t, &[("IMPORT_NAME", 0)]);
    assert_eq!(
        findings(&unit("f", code, &["m"], vec![]), &t),
        vec![import("m", 0, &[])]
    );
}

// ── global chains ───────────────────────────────────────────────────────────────────────────

#[test]
fn global_chain_encodings_per_version() {
    // os.path.join(x) in each version's encoding; names: os, path, join.
    let names = ["os", "path", "join"];
    let t = table((3, 10), PY310);
    let code = asm(
        &t,
        &[
            ("LOAD_GLOBAL", 0),
            ("LOAD_ATTR", 1),
            ("LOAD_METHOD", 2),
            ("CALL_METHOD", 0),
        ],
    );
    assert_eq!(
        findings(&unit("f", code, &names, vec![]), &t),
        vec![chain("os", &["path", "join"])]
    );

    let t = table((3, 11), PY311);
    let code = asm(
        &t,
        &[
            ("LOAD_GLOBAL", 0 << 1), // no NULL: method call follows
            ("LOAD_ATTR", 1),
            ("LOAD_METHOD", 2),
            ("PRECALL", 0),
            ("CALL", 0),
        ],
    );
    assert_eq!(
        findings(&unit("f", code, &names, vec![]), &t),
        vec![chain("os", &["path", "join"])]
    );

    let t = table((3, 12), PY312);
    let code = asm(
        &t,
        &[
            ("LOAD_GLOBAL", 0 << 1),
            ("LOAD_ATTR", 1 << 1),
            ("LOAD_ATTR", (2 << 1) | 1), // method load
            ("CALL", 0),
        ],
    );
    assert_eq!(
        findings(&unit("f", code, &names, vec![]), &t),
        vec![chain("os", &["path", "join"])]
    );
}

#[test]
fn chain_boundaries() {
    let t = table((3, 11), PY311);
    let code = asm(
        &t,
        &[
            // A bare global is no chain.
            ("LOAD_GLOBAL", 1 << 1),
            ("POP_TOP", 0),
            // Transparent opcodes in between do not break a chain.
            ("LOAD_GLOBAL", (2 << 1) | 1),
            ("NOP", 0),
            ("LOAD_ATTR", 3),
            ("PUSH_NULL", 0),
            ("LOAD_ATTR", 4),
            // A chain ends at the first other opcode; the next root starts a new one.
            ("LOAD_NAME", 0),
            ("LOAD_ATTR", 5),
            ("POP_TOP", 0),
            ("LOAD_ATTR", 4),
            // Attributes of a local are not reported.
            ("LOAD_FAST", 0),
            ("LOAD_ATTR", 3),
        ],
    );
    let mut u = unit("f", code, &["cls", "print", "a", "b", "c", "d"], vec![]);
    u.varnames = strs(&["local"]);
    assert_eq!(
        findings(&u, &t),
        vec![chain("a", &["b", "c"]), chain("cls", &["d"])]
    );
}

// ── dynamic imports ─────────────────────────────────────────────────────────────────────────

#[test]
fn dynamic_imports_311() {
    let t = table((3, 11), PY311);
    let code = asm(
        &t,
        &[
            // importlib.import_module("json")
            ("LOAD_GLOBAL", 0 << 1),
            ("LOAD_METHOD", 1),
            ("LOAD_CONST", 0),
            ("PRECALL", 1),
            ("CALL", 1),
            ("POP_TOP", 0),
            // __import__("csv")
            ("LOAD_GLOBAL", (2 << 1) | 1),
            ("LOAD_CONST", 1),
            ("PRECALL", 1),
            ("CALL", 1),
            ("POP_TOP", 0),
            // import_module(".sub", package="pkg")
            ("LOAD_GLOBAL", (1 << 1) | 1),
            ("LOAD_CONST", 2),
            ("LOAD_CONST", 3),
            ("KW_NAMES", 4),
            ("PRECALL", 2),
            ("CALL", 2),
            ("POP_TOP", 0),
            // builtins.__import__("zlib"), builtins from a local (`import builtins` inside)
            ("LOAD_FAST", 0),
            ("LOAD_METHOD", 2),
            ("LOAD_CONST", 5),
            ("PRECALL", 1),
            ("CALL", 1),
        ],
    );
    let mut u = unit(
        "f",
        code,
        &["importlib", "import_module", "__import__"],
        vec![
            Const::Str("json".into()),
            Const::Str("csv".into()),
            Const::Str(".sub".into()),
            Const::Str("pkg".into()),
            str_tuple(&["package"]),
            Const::Str("zlib".into()),
        ],
    );
    u.varnames = strs(&["builtins"]);
    assert_eq!(
        findings(&u, &t),
        vec![
            chain("importlib", &["import_module"]),
            dynamic("json", "importlib.import_module"),
            dynamic("csv", "__import__"),
            dynamic(".sub", "import_module"),
            dynamic("zlib", "builtins.__import__"),
        ]
    );
}

#[test]
fn dynamic_imports_other_versions() {
    let t = table((3, 10), PY310);
    let code = asm(
        &t,
        &[("LOAD_GLOBAL", 0), ("LOAD_CONST", 0), ("CALL_FUNCTION", 1)],
    );
    let u = unit("f", code, &["__import__"], vec![Const::Str("json".into())]);
    assert_eq!(findings(&u, &t), vec![dynamic("json", "__import__")]);

    // 3.14: NULL pushed after the callee, keyword call.
    let t = table((3, 14), PY314);
    let code = asm(
        &t,
        &[
            ("LOAD_GLOBAL", 0 << 1),
            ("LOAD_ATTR", (1 << 1) | 1),
            ("PUSH_NULL", 0),
            ("LOAD_CONST", 0),
            ("LOAD_CONST", 1),
            ("CALL_KW", 2),
        ],
    );
    let u = unit(
        "f",
        code,
        &["importlib", "import_module"],
        vec![Const::Str("json".into()), str_tuple(&["package"])],
    );
    assert_eq!(
        findings(&u, &t),
        vec![
            chain("importlib", &["import_module"]),
            dynamic("json", "importlib.import_module")
        ]
    );
}

#[test]
fn not_dynamic_imports() {
    let t = table((3, 12), PY312);
    let names = ["import_module", "x", "loader"];
    let consts = vec![Const::Str("json".into()), Const::Int(3)];
    let cases: &[&[(&str, u32)]] = &[
        // The string is not an argument: (import_module, "json")
        &[("LOAD_GLOBAL", 0), ("LOAD_CONST", 0), ("BUILD_TUPLE", 2)],
        // A computed argument: import_module(x)
        &[("LOAD_GLOBAL", 1), ("LOAD_GLOBAL", 1 << 1), ("CALL", 1)],
        // A non-constant second argument: import_module("json", x)
        &[
            ("LOAD_GLOBAL", 1),
            ("LOAD_CONST", 0),
            ("LOAD_GLOBAL", 1 << 1),
            ("CALL", 2),
        ],
        // Not a string: import_module(3)
        &[("LOAD_GLOBAL", 1), ("LOAD_CONST", 1), ("CALL", 1)],
        // Another callee: loader("json")
        &[
            ("LOAD_GLOBAL", (2 << 1) | 1),
            ("LOAD_CONST", 0),
            ("CALL", 1),
        ],
        // Ends before any call.
        &[("LOAD_GLOBAL", 1), ("LOAD_CONST", 0)],
    ];
    for case in cases {
        let u = unit("f", asm(&t, case), &names, consts.clone());
        let found = findings(&u, &t);
        assert!(
            !found
                .iter()
                .any(|f| matches!(f, Finding::DynamicImport { .. })),
            "{case:?}: {found:?}"
        );
    }
}

// ── nesting, order, duplicates ──────────────────────────────────────────────────────────────

#[test]
fn nested_code_objects_in_preorder_with_qualnames() {
    let t = table((3, 11), PY311);
    let importing = |qualname: &str, module: &str, consts: Vec<Const>| {
        let mut all = vec![Const::Int(0), Const::None];
        all.extend(consts);
        unit(
            qualname,
            asm(
                &t,
                &[("LOAD_CONST", 0), ("LOAD_CONST", 1), ("IMPORT_NAME", 0)],
            ),
            &[module],
            all,
        )
    };
    let inner = importing("f.<locals>.<listcomp>.<listcomp>", "c", vec![]);
    let comp = importing(
        "f.<locals>.<listcomp>",
        "b",
        vec![Const::Code(Box::new(inner))],
    );
    let lambda = importing("f.<locals>.<lambda>", "d", vec![]);
    let root = importing(
        "f",
        "a",
        vec![
            Const::Code(Box::new(comp)),
            // Code objects inside tuples are found too.
            Const::Tuple(vec![Const::Str("x".into()), Const::Code(Box::new(lambda))]),
        ],
    );
    let located: Vec<(String, Finding)> = scan(&root, &t)
        .unwrap()
        .into_iter()
        .map(|l| (l.qualname, l.finding))
        .collect();
    assert_eq!(
        located,
        vec![
            ("f".to_owned(), import("a", 0, &[])),
            ("f.<locals>.<listcomp>".to_owned(), import("b", 0, &[])),
            (
                "f.<locals>.<listcomp>.<listcomp>".to_owned(),
                import("c", 0, &[])
            ),
            ("f.<locals>.<lambda>".to_owned(), import("d", 0, &[])),
        ]
    );
}

#[test]
fn duplicates_dropped_per_code_object_only() {
    let t = table((3, 11), PY311);
    let program = [
        ("LOAD_GLOBAL", 0),
        ("LOAD_ATTR", 1),
        ("POP_TOP", 0),
        ("LOAD_GLOBAL", 2 << 1),
        ("LOAD_ATTR", 1),
        ("POP_TOP", 0),
        ("LOAD_GLOBAL", 0),
        ("LOAD_ATTR", 1),
        ("POP_TOP", 0),
    ];
    let names = ["os", "path", "posixpath"];
    let inner = unit("f.<locals>.g", asm(&t, &program), &names, vec![]);
    let root = unit(
        "f",
        asm(&t, &program),
        &names,
        vec![Const::Code(Box::new(inner))],
    );
    let located: Vec<(String, Finding)> = scan(&root, &t)
        .unwrap()
        .into_iter()
        .map(|l| (l.qualname, l.finding))
        .collect();
    let f = |q: &str, g: &str| (q.to_owned(), chain(g, &["path"]));
    assert_eq!(
        located,
        vec![
            f("f", "os"),
            f("f", "posixpath"),
            f("f.<locals>.g", "os"),
            f("f.<locals>.g", "posixpath"),
        ]
    );
}

#[test]
fn deep_nesting_uses_no_call_stack() {
    // Far deeper than any compiler output; recursion here would overflow a test thread.
    let t = table((3, 11), PY311);
    let code = asm(
        &t,
        &[("LOAD_CONST", 0), ("LOAD_CONST", 0), ("IMPORT_NAME", 0)],
    );
    let mut current = unit("leaf", code.clone(), &["m"], vec![Const::Int(0)]);
    for depth in 0..200_000 {
        current = unit(
            &format!("level{depth}"),
            Vec::new(),
            &[],
            vec![Const::Tuple(vec![Const::Code(Box::new(current))])],
        );
    }
    let located = scan(&current, &t).unwrap();
    assert_eq!(located.len(), 1);
    assert_eq!(located[0].qualname, "leaf");
    assert_eq!(located[0].finding, import("m", 0, &[]));
}

// ── malformed input ─────────────────────────────────────────────────────────────────────────

#[test]
fn out_of_range_indexes_are_errors() {
    let t = table((3, 11), PY311);
    let err = |program: &[(&str, u32)], names: &[&str], consts: Vec<Const>| {
        scan(&unit("g", asm(&t, program), names, consts), &t).unwrap_err()
    };
    assert_eq!(
        err(&[("IMPORT_NAME", 1)], &["only"], vec![]),
        BytecodeError::IndexOutOfRange {
            qualname: "g".into(),
            opname: "IMPORT_NAME".into(),
            offset: 0,
            what: "name",
            index: 1,
        }
    );
    // The name index of LOAD_GLOBAL is arg >> 1 on 3.11: 2 >> 1 = 1 is past one name.
    assert!(matches!(
        err(&[("POP_TOP", 0), ("LOAD_GLOBAL", 2)], &["only"], vec![]),
        BytecodeError::IndexOutOfRange { opname, offset: 2, what: "name", index: 1, .. }
            if opname == "LOAD_GLOBAL"
    ));
    assert!(matches!(
        err(&[("LOAD_GLOBAL", 0), ("LOAD_METHOD", 7)], &["only"], vec![]),
        BytecodeError::IndexOutOfRange {
            what: "name",
            index: 7,
            ..
        }
    ));
    assert!(matches!(
        err(
            &[("LOAD_CONST", 9), ("IMPORT_NAME", 0)],
            &["only"],
            vec![Const::None]
        ),
        BytecodeError::IndexOutOfRange {
            what: "const",
            index: 9,
            ..
        }
    ));
    assert!(matches!(
        err(
            &[("LOAD_GLOBAL", 1), ("LOAD_CONST", 4), ("CALL", 1)],
            &["__import__"],
            vec![]
        ),
        BytecodeError::IndexOutOfRange {
            what: "const",
            index: 4,
            ..
        }
    ));
    // A nested code object's error names that code object.
    let bad = unit("f.<locals>.bad", vec![100, 0, 1], &[], vec![]);
    let root = unit("f", Vec::new(), &[], vec![Const::Code(Box::new(bad))]);
    assert_eq!(
        scan(&root, &t),
        Err(BytecodeError::OddLength {
            qualname: "f.<locals>.bad".into(),
            len: 3
        })
    );
}

fn arb_const() -> impl Strategy<Value = Const> {
    prop_oneof![
        Just(Const::None),
        Just(Const::Other),
        (-2i64..4).prop_map(Const::Int),
        "[a-z*.]{0,3}".prop_map(Const::Str),
        prop::collection::vec("[a-z*]{1,2}".prop_map(Const::Str), 0..3).prop_map(Const::Tuple),
    ]
}

proptest! {
    /// Arbitrary bytes over real opcode numbers never panic: either findings or an error.
    #[test]
    fn arbitrary_bytecode_never_panics(
        body in prop::collection::vec(
            (prop::sample::select(vec![0u8, 1, 2, 9, 100, 101, 102, 106, 108, 116, 124, 144,
                                       160, 166, 171, 172, 255]), any::<u8>()),
            0..64,
        ),
        odd in any::<bool>(),
        names in prop::collection::vec("[a-z_]{1,12}", 0..4),
        consts in prop::collection::vec(arb_const(), 0..4),
        version in prop::sample::select(vec![(3u8, 10u8), (3, 11), (3, 12)]),
    ) {
        let t = table(version, if version == (3, 12) { PY312 } else { PY311 });
        let mut code: Vec<u8> = body.into_iter().flat_map(|(op, arg)| [op, arg]).collect();
        if odd {
            code.push(0);
        }
        let decoded = decode(&code, &t);
        prop_assert_eq!(decoded.is_err(), odd);
        let mut u = unit("p", code, &[], consts);
        u.names = names.clone();
        u.varnames = names;
        let _ = scan(&u, &t);
    }
}
