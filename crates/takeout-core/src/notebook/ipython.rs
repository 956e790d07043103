//! `IPython` syntax: what a magic, a shell line or a help request does to the namespace.
//!
//! ruff's parser (in `IPython` mode) already turns `%line` magics, `!shell`, `?help` and
//! `x = !cmd` into nodes of their own; this module decides what each one means for slicing.
//! Three outcomes: it only shows something (left out of every slice), it runs Python code in
//! the user's namespace (`%time x = f()`: analysed as that code), or it is opaque and may
//! touch any name or file (`%run`, `%store -r`, `%cd`, `!wget`, unknown magics). Cell magics
//! (`%%name` on a cell's first line) are split off here before the cell is parsed, because
//! their bodies need not be Python at all.

/// What an `IPython` escape means for the slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect<'a> {
    /// Shows something and changes no name (`%matplotlib`, `np.sum?`, `%%html`, `%timeit`).
    Display,
    /// Python code that runs in the user namespace (`%time x = f()`, a `%%time` body).
    Python(&'a str),
    /// Runs outside Python (`!cmd`, `%pip`, `%%bash`, `%%writefile`): it cannot bind or
    /// change a Python name, only files and installed packages.
    Shell,
    /// May define or change any name (`%run`, `%store -r`, unknown magics).
    Opaque,
    /// `%load_ext`/`%reload_ext`: defines magics, changes no name the function reads.
    Extension,
    /// `%cd`: changes the working directory the kept statements after it run in.
    Chdir,
}

/// Opaque magics IPython defines itself: any other is an extension's (or a typo).
const BUILTIN_OPAQUE_MAGICS: &[&str] = &[
    "alias",
    "bookmark",
    "code_wrap",
    "edit",
    "load",
    "macro",
    "popd",
    "pushd",
    "rehashx",
    "recall",
    "rerun",
    "reset",
    "reset_selective",
    "run",
    "save",
    "store",
    "unalias",
];

/// Is `name` (without `%`) a magic that only an extension can have defined?
pub(crate) fn is_unknown_magic(name: &str) -> bool {
    !(BUILTIN_OPAQUE_MAGICS.contains(&name)
        || DISPLAY_MAGICS.contains(&name)
        || SHELL_MAGICS.contains(&name)
        || PYTHON_CELL_MAGICS.contains(&name)
        || DISPLAY_CELL_MAGICS.contains(&name)
        || SHELL_CELL_MAGICS.contains(&name)
        || matches!(
            name,
            "time" | "prun" | "env" | "cd" | "load_ext" | "reload_ext" | "unload_ext"
        ))
}

/// Line magics that only show or configure display: nothing the function could capture.
/// `%timeit` belongs here because it runs its statement in a namespace of its own.
const DISPLAY_MAGICS: &[&str] = &[
    "aimport",
    "alias_magic",
    "autoawait",
    "autocall",
    "automagic",
    "autoreload",
    "colors",
    "config",
    "debug",
    "dhist",
    "dirs",
    "doctest_mode",
    "history",
    "hist",
    "killbgscripts",
    "logoff",
    "logon",
    "logstart",
    "logstate",
    "logstop",
    "ls",
    "lsmagic",
    "magic",
    "matplotlib",
    "notebook",
    "page",
    "pdb",
    "pdef",
    "pdoc",
    "pfile",
    "pinfo",
    "pinfo2",
    "pprint",
    "precision",
    "psource",
    "pwd",
    "quickref",
    "tb",
    "timeit",
    "unload_ext",
    "who",
    "who_ls",
    "whos",
    "xmode",
];

/// Line magics that run a command outside Python.
const SHELL_MAGICS: &[&str] = &[
    "conda",
    "mamba",
    "micromamba",
    "pip",
    "sc",
    "sx",
    "system",
    "uv",
];

/// Cell magics whose body runs in another process.
const SHELL_CELL_MAGICS: &[&str] = &[
    "bash",
    "file",
    "perl",
    "pypy",
    "python",
    "python2",
    "python3",
    "ruby",
    "script",
    "sh",
    "system",
    "writefile",
];

/// Cell magics whose body is Python run in the user namespace.
const PYTHON_CELL_MAGICS: &[&str] = &["time", "prun", "capture"];

/// Cell magics that only render their body or time it in a namespace of its own.
const DISPLAY_CELL_MAGICS: &[&str] = &[
    "HTML",
    "html",
    "javascript",
    "js",
    "latex",
    "markdown",
    "svg",
    "timeit",
];

/// A line magic, given without its `%` (`"time model.fit(X)"`, as ruff stores it).
pub(crate) fn line_magic(value: &str) -> Effect<'_> {
    let value = value.trim_start();
    let (name, rest) = split_word(value);
    match name {
        // `%time` takes no options: the rest is a statement.
        "time" if !rest.trim().is_empty() => Effect::Python(rest),
        // `%prun` runs its statement in the user namespace; options make the rest ambiguous.
        "prun" if !rest.trim_start().starts_with('-') && !rest.trim().is_empty() => {
            Effect::Python(rest)
        }
        "env" if !rest.contains('=') && rest.split_whitespace().count() <= 1 => Effect::Display,
        "load_ext" | "reload_ext" => Effect::Extension,
        "cd" => Effect::Chdir,
        _ if DISPLAY_MAGICS.contains(&name) => Effect::Display,
        _ if SHELL_MAGICS.contains(&name) => Effect::Shell,
        _ => Effect::Opaque,
    }
}

/// A cell that starts with a `%%` magic (after leading blank lines, as `IPython` strips them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CellMagic<'a> {
    pub(crate) name: &'a str,
    /// Byte offset where the body starts (just after the magic line's newline).
    pub(crate) body_start: usize,
    /// Byte range of the magic line itself (without its newline).
    pub(crate) line: (usize, usize),
    pub(crate) effect: Effect<'a>,
    /// The variable `%%capture NAME` assigns.
    pub(crate) defines: Option<&'a str>,
    /// The rest of the magic line.
    pub(crate) args: &'a str,
}

pub(crate) fn cell_magic(source: &str) -> Option<CellMagic<'_>> {
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        if content.trim().is_empty() {
            offset += line.len();
            continue;
        }
        let rest = content.strip_prefix("%%")?;
        let (name, args) = split_word(rest);
        let effect = if PYTHON_CELL_MAGICS.contains(&name) {
            Effect::Python(&source[offset + line.len()..])
        } else if DISPLAY_CELL_MAGICS.contains(&name) {
            Effect::Display
        } else if SHELL_CELL_MAGICS.contains(&name) {
            Effect::Shell
        } else {
            Effect::Opaque
        };
        let defines = if name == "capture" {
            // `%%capture [--no-stderr] [--no-stdout] [--no-display] [output]`
            args.split_whitespace().find(|arg| !arg.starts_with('-'))
        } else {
            None
        };
        return Some(CellMagic {
            name,
            body_start: offset + line.len(),
            line: (offset, offset + content.len()),
            effect,
            defines,
            args,
        });
    }
    None
}

/// The Python expressions `IPython` interpolates into a shell line or a magic's arguments:
/// `{expr}` and `$name` (`{{`, `}}` and `$$` are escapes). The flag is true for `$name`,
/// which `IPython` leaves to the shell when no Python variable has that name.
pub(crate) fn interpolations(text: &str) -> Vec<(&str, bool)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => i += 2,
            b'{' => {
                let mut depth = 1;
                let mut j = i + 1;
                while j < bytes.len() && depth > 0 {
                    match bytes[j] {
                        b'{' => depth += 1,
                        b'}' => depth -= 1,
                        _ => {}
                    }
                    j += 1;
                }
                if depth == 0 {
                    found.push((&text[i + 1..j - 1], false));
                }
                i = j;
            }
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 2,
            b'$' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && (bytes[j] == b'_' || bytes[j].is_ascii_alphanumeric()) {
                    j += 1;
                }
                if j > start && !bytes[start].is_ascii_digit() {
                    found.push((&text[start..j], true));
                }
                i = j.max(i + 1);
            }
            _ => i += 1,
        }
    }
    found
}

fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(at) => (&text[..at], &text[at..]),
        None => (text, ""),
    }
}
