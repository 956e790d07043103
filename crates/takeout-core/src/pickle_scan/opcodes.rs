//! The pickle opcode set of protocols 0-5, named as `pickletools` names them (the names
//! appear in error messages, so a user can match them against `pickletools.dis` output).

macro_rules! opcodes {
    ($($name:ident = $byte:literal,)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        pub(crate) enum Op {
            $($name,)*
        }

        impl Op {
            /// Every opcode, for tests that walk the whole table.
            #[cfg(test)]
            pub(crate) const ALL: &'static [Op] = &[$(Op::$name,)*];

            #[inline]
            pub(crate) fn from_byte(byte: u8) -> Option<Op> {
                match byte {
                    $($byte => Some(Op::$name),)*
                    _ => None,
                }
            }

            #[cfg(test)]
            pub(crate) fn byte(self) -> u8 {
                match self {
                    $(Op::$name => $byte,)*
                }
            }

            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(Op::$name => stringify!($name),)*
                }
            }
        }
    };
}

opcodes! {
    // Integers.
    INT = b'I',
    BININT = b'J',
    BININT1 = b'K',
    BININT2 = b'M',
    LONG = b'L',
    LONG1 = 0x8a,
    LONG4 = 0x8b,
    // Strings and bytes.
    STRING = b'S',
    BINSTRING = b'T',
    SHORT_BINSTRING = b'U',
    BINBYTES = b'B',
    SHORT_BINBYTES = b'C',
    BINBYTES8 = 0x8e,
    BYTEARRAY8 = 0x96,
    NEXT_BUFFER = 0x97,
    READONLY_BUFFER = 0x98,
    UNICODE = b'V',
    SHORT_BINUNICODE = 0x8c,
    BINUNICODE = b'X',
    BINUNICODE8 = 0x8d,
    // Constants and floats.
    NONE = b'N',
    NEWTRUE = 0x88,
    NEWFALSE = 0x89,
    FLOAT = b'F',
    BINFLOAT = b'G',
    // Containers.
    EMPTY_LIST = b']',
    APPEND = b'a',
    APPENDS = b'e',
    LIST = b'l',
    EMPTY_TUPLE = b')',
    TUPLE = b't',
    TUPLE1 = 0x85,
    TUPLE2 = 0x86,
    TUPLE3 = 0x87,
    EMPTY_DICT = b'}',
    DICT = b'd',
    SETITEM = b's',
    SETITEMS = b'u',
    EMPTY_SET = 0x8f,
    ADDITEMS = 0x90,
    FROZENSET = 0x91,
    // Stack manipulation.
    POP = b'0',
    DUP = b'2',
    MARK = b'(',
    POP_MARK = b'1',
    // Memo.
    GET = b'g',
    BINGET = b'h',
    LONG_BINGET = b'j',
    PUT = b'p',
    BINPUT = b'q',
    LONG_BINPUT = b'r',
    MEMOIZE = 0x94,
    // Globals and object construction.
    EXT1 = 0x82,
    EXT2 = 0x83,
    EXT4 = 0x84,
    GLOBAL = b'c',
    STACK_GLOBAL = 0x93,
    REDUCE = b'R',
    BUILD = b'b',
    INST = b'i',
    OBJ = b'o',
    NEWOBJ = 0x81,
    NEWOBJ_EX = 0x92,
    // Framing and control.
    PROTO = 0x80,
    STOP = b'.',
    FRAME = 0x95,
    PERSID = b'P',
    BINPERSID = b'Q',
}
