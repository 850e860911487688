//! D-Bus messages on the wire: the header written and read by hand (a few
//! fixed fields), the body by zvariant from the contract's own types, so
//! its layout has one definition.
//!
//! Everything read is bounds-checked: a malformed message is an error,
//! never a panic or an allocation larger than [`MAX_MESSAGE`].

use serde::{de::DeserializeOwned, Serialize};
use zvariant::serialized::{Context, Data};
use zvariant::{Endian, Type};

/// The largest message read or written (the specification allows 128 MiB;
/// nothing in a login comes near 1 MiB).
pub const MAX_MESSAGE: usize = 1 << 20;
/// The fixed part of every header: endianness, type, flags, version, body
/// length, serial, and the length of the header-field array.
pub const FIXED_HEADER: usize = 16;

const PROTOCOL_VERSION: u8 = 1;
/// The sender does not wait for a reply.
pub const NO_REPLY_EXPECTED: u8 = 0x1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MethodCall = 1,
    MethodReturn = 2,
    Error = 3,
    Signal = 4,
}

const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SIGNATURE: u8 = 8;

/// A message that is not well formed, or a body that is not what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

fn bad(problem: impl Into<String>) -> WireError {
    WireError(problem.into())
}

/// A method call to send.
pub struct Call<'a> {
    pub serial: u32,
    pub destination: Option<&'a str>,
    pub path: &'a str,
    pub interface: &'a str,
    pub member: &'a str,
    pub flags: u8,
}

impl Call<'_> {
    /// The whole message, with `args` (a tuple: one element per argument)
    /// as its body.
    pub fn encode<T: Serialize + Args>(&self, args: &T) -> Result<Vec<u8>, WireError> {
        let body = zvariant::to_bytes(Context::new_dbus(Endian::Little, 0), args)
            .map_err(|e| bad(format!("cannot encode {}: {e}", self.member)))?;
        let signature = args_signature::<T>();
        let mut out = Vec::with_capacity(128 + body.len());
        out.extend_from_slice(&[b'l', Kind::MethodCall as u8, self.flags, PROTOCOL_VERSION]);
        put_u32(
            &mut out,
            u32::try_from(body.len()).map_err(|_| bad("body too long"))?,
        );
        put_u32(&mut out, self.serial);
        put_u32(&mut out, 0); // the field array's length, set below
        let fields_start = out.len();
        field_str(&mut out, FIELD_PATH, b'o', self.path);
        field_str(&mut out, FIELD_INTERFACE, b's', self.interface);
        field_str(&mut out, FIELD_MEMBER, b's', self.member);
        if let Some(destination) = self.destination {
            field_str(&mut out, FIELD_DESTINATION, b's', destination);
        }
        if !signature.is_empty() {
            pad_to(&mut out, 8);
            out.extend_from_slice(&[FIELD_SIGNATURE, 1, b'g', 0]);
            out.push(u8::try_from(signature.len()).map_err(|_| bad("signature too long"))?);
            out.extend_from_slice(signature.as_bytes());
            out.push(0);
        }
        let fields_len = u32::try_from(out.len() - fields_start).map_err(|_| bad("too long"))?;
        out[12..16].copy_from_slice(&fields_len.to_le_bytes());
        pad_to(&mut out, 8);
        out.extend_from_slice(body.bytes());
        if out.len() > MAX_MESSAGE {
            return Err(bad(format!("{} would be too long", self.member)));
        }
        Ok(out)
    }
}

/// The arguments of a call or a reply: a tuple, one element per argument.
/// Its signature in a message is its elements' signatures one after the
/// other (zvariant writes the tuple's bytes exactly so at offset 0).
pub trait Args: Type {
    fn signature() -> String;
}

macro_rules! args {
    ($($name:ident),*) => {
        impl<$($name: Type),*> Args for ($($name,)*) {
            fn signature() -> String {
                let parts: [String; 0 $(+ { let _ = stringify!($name); 1 })*] =
                    [$($name::SIGNATURE.to_string()),*];
                parts.concat()
            }
        }
    };
}

args!();
args!(A);
args!(A, B);
args!(A, B, C);
args!(A, B, C, D);

/// The signature of `T` as a message body.
pub fn args_signature<T: Args>() -> String {
    T::signature()
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn pad_to(out: &mut Vec<u8>, align: usize) {
    while !out.len().is_multiple_of(align) {
        out.push(0);
    }
}

fn field_str(out: &mut Vec<u8>, code: u8, kind: u8, value: &str) {
    pad_to(out, 8);
    out.extend_from_slice(&[code, 1, kind, 0]);
    pad_to(out, 4);
    // Names and paths are short constants or bus names.
    put_u32(out, value.len() as u32);
    out.extend_from_slice(value.as_bytes());
    out.push(0);
}

/// A message read from the other end.
#[derive(Debug, Clone)]
pub struct Message {
    pub kind: Kind,
    pub serial: u32,
    pub reply_serial: Option<u32>,
    pub error_name: Option<String>,
    pub signature: String,
    endian: Endian,
    body: Vec<u8>,
}

impl Message {
    /// The body as `T` (a tuple: one element per argument), once its
    /// signature is shown to be `T`'s.
    pub fn body<T: DeserializeOwned + Args>(&self) -> Result<T, WireError> {
        let expected = args_signature::<T>();
        if self.signature != expected {
            return Err(bad(format!(
                "a reply of signature \"{}\" where \"{expected}\" was expected",
                self.signature
            )));
        }
        let data = Data::new(self.body.as_slice(), Context::new_dbus(self.endian, 0));
        let (value, used) = data
            .deserialize::<T>()
            .map_err(|e| bad(format!("a reply that does not decode: {e}")))?;
        if used != self.body.len() {
            return Err(bad("a reply with bytes after its arguments"));
        }
        Ok(value)
    }

    /// The first argument of an error reply, when it is a string.
    pub fn error_message(&self) -> String {
        if !self.signature.starts_with('s') {
            return String::new();
        }
        let endian = self.endian;
        let mut reader = Reader::new(&self.body, endian);
        reader.string().unwrap_or_default()
    }
}

/// The total length of the message that starts `buf`, once its fixed
/// header has arrived; `None` until then.
pub fn message_length(buf: &[u8]) -> Result<Option<usize>, WireError> {
    if buf.len() < FIXED_HEADER {
        return Ok(None);
    }
    let endian = endian_of(buf[0])?;
    let mut reader = Reader::new(&buf[..FIXED_HEADER], endian);
    reader.skip(4)?;
    let body_len = reader.u32()? as usize;
    reader.skip(4)?;
    let fields_len = reader.u32()? as usize;
    let header = (FIXED_HEADER + fields_len).next_multiple_of(8);
    let total = header.saturating_add(body_len);
    if fields_len > MAX_MESSAGE || body_len > MAX_MESSAGE || total > MAX_MESSAGE {
        return Err(bad(format!("a message of {total} bytes, over the limit")));
    }
    Ok(Some(total))
}

/// Read one whole message (`buf` is exactly [`message_length`] long).
pub fn parse(buf: &[u8]) -> Result<Message, WireError> {
    let total = message_length(buf)?.ok_or_else(|| bad("a message cut short"))?;
    if total != buf.len() {
        return Err(bad("a message of the wrong length"));
    }
    let endian = endian_of(buf[0])?;
    let kind = match buf[1] {
        1 => Kind::MethodCall,
        2 => Kind::MethodReturn,
        3 => Kind::Error,
        4 => Kind::Signal,
        other => return Err(bad(format!("a message of unknown type {other}"))),
    };
    if buf[3] != PROTOCOL_VERSION {
        return Err(bad(format!("D-Bus protocol version {}", buf[3])));
    }
    let mut reader = Reader::new(buf, endian);
    reader.skip(4)?;
    let body_len = reader.u32()? as usize;
    let serial = reader.u32()?;
    let fields_len = reader.u32()? as usize;
    let fields_end = FIXED_HEADER + fields_len;
    let mut message = Message {
        kind,
        serial,
        reply_serial: None,
        error_name: None,
        signature: String::new(),
        endian,
        body: Vec::new(),
    };
    while reader.at < fields_end {
        reader.align(8)?;
        let code = reader.byte()?;
        let kind = reader.signature()?;
        match kind.as_str() {
            "s" | "o" => {
                let value = reader.string()?;
                if code == FIELD_ERROR_NAME {
                    message.error_name = Some(value);
                }
            }
            "g" => {
                let value = reader.signature()?;
                if code == FIELD_SIGNATURE {
                    message.signature = value;
                }
            }
            "u" => {
                let value = reader.u32()?;
                if code == FIELD_REPLY_SERIAL {
                    message.reply_serial = Some(value);
                }
            }
            other => {
                return Err(bad(format!(
                    "header field {code} of type \"{other}\", which no known field has"
                )))
            }
        }
    }
    if reader.at != fields_end {
        return Err(bad("header fields overrun their array"));
    }
    let body_start = fields_end.next_multiple_of(8);
    message.body = buf
        .get(body_start..body_start + body_len)
        .ok_or_else(|| bad("a body cut short"))?
        .to_vec();
    Ok(message)
}

fn endian_of(byte: u8) -> Result<Endian, WireError> {
    match byte {
        b'l' => Ok(Endian::Little),
        b'B' => Ok(Endian::Big),
        other => Err(bad(format!(
            "not a D-Bus message (first byte {other:#04x})"
        ))),
    }
}

/// A cursor over a message, every read bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    endian: Endian,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], endian: Endian) -> Self {
        Reader { buf, at: 0, endian }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.at.checked_add(n).ok_or_else(|| bad("overflow"))?;
        let bytes = self
            .buf
            .get(self.at..end)
            .ok_or_else(|| bad("a message cut short"))?;
        self.at = end;
        Ok(bytes)
    }

    fn skip(&mut self, n: usize) -> Result<(), WireError> {
        self.take(n).map(|_| ())
    }

    fn align(&mut self, align: usize) -> Result<(), WireError> {
        let padding = self.at.next_multiple_of(align) - self.at;
        if self.take(padding)?.iter().any(|&b| b != 0) {
            return Err(bad("padding that is not zero"));
        }
        Ok(())
    }

    fn byte(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        self.align(4)?;
        let bytes: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| bad("a message cut short"))?;
        Ok(match self.endian {
            Endian::Little => u32::from_le_bytes(bytes),
            Endian::Big => u32::from_be_bytes(bytes),
        })
    }

    fn text(&mut self, len: usize) -> Result<String, WireError> {
        let bytes = self.take(len)?;
        if self.byte()? != 0 {
            return Err(bad("a string without its terminating nul"));
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| bad("a string that is not UTF-8"))
    }

    fn string(&mut self) -> Result<String, WireError> {
        let len = self.u32()? as usize;
        self.text(len)
    }

    fn signature(&mut self) -> Result<String, WireError> {
        let len = self.byte()? as usize;
        self.text(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{LoginRequest, Step};

    /// zbus's reading of `bytes`.
    fn zbus_reads(bytes: Vec<u8>) -> zbus::Message {
        let data = Data::new(bytes, Context::new_dbus(Endian::Little, 0));
        // SAFETY: the message carries no file descriptors, so none can be
        // misattributed (the reason from_bytes is unsafe).
        unsafe { zbus::Message::from_bytes(data) }.expect("zbus parses it")
    }

    fn call(member: &str) -> Call<'_> {
        Call {
            serial: 7,
            destination: Some(":1.42"),
            path: crate::OBJECT_PATH,
            interface: crate::LOGIN_INTERFACE,
            member,
            flags: 0,
        }
    }

    /// zbus, an implementation we did not write, reads what we write.
    #[test]
    fn zbus_reads_our_calls() {
        let request = LoginRequest {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: "192.0.2.7".into(),
            max_tries: 3,
            ..LoginRequest::default()
        };
        let bytes = call("Start").encode(&(request.clone(),)).expect("encode");
        let message = zbus_reads(bytes);
        let header = message.header();
        assert_eq!(header.member().map(|m| m.as_str()), Some("Start"));
        assert_eq!(
            header.interface().map(|i| i.as_str()),
            Some(crate::LOGIN_INTERFACE)
        );
        assert_eq!(header.path().map(|p| p.as_str()), Some(crate::OBJECT_PATH));
        assert_eq!(
            header.destination().map(|d| d.to_string()),
            Some(":1.42".into())
        );
        assert_eq!(header.primary().serial_num().get(), 7);
        let body: LoginRequest = message.body().deserialize().expect("body");
        assert_eq!(body, request);

        let bytes = call("Answer")
            .encode(&("handle", "123456", 99u64))
            .expect("encode");
        let message = zbus_reads(bytes);
        let (h, a, d): (String, String, u64) = message.body().deserialize().expect("body");
        assert_eq!((h.as_str(), a.as_str(), d), ("handle", "123456", 99));
    }

    /// We read what zbus writes: a reply with two arguments, and an error.
    #[test]
    fn we_read_zbus_replies_and_errors() {
        let call_bytes = call("Start")
            .encode(&(LoginRequest::default(),))
            .expect("encode");
        let call = zbus_reads(call_bytes);
        let step = Step::prompt("Verification code: ", false);
        let reply = zbus::Message::method_return(&call.header())
            .expect("builder")
            .build(&("h-1", step.clone()))
            .expect("reply");
        let bytes = reply.data().bytes().to_vec();
        assert_eq!(message_length(&bytes).expect("length"), Some(bytes.len()));
        let parsed = parse(&bytes).expect("parse");
        assert_eq!(parsed.kind, Kind::MethodReturn);
        assert_eq!(parsed.reply_serial, Some(7));
        let (handle, got): (String, Step) = parsed.body().expect("body");
        assert_eq!((handle.as_str(), got), ("h-1", step.clone()));
        // The wrong type is refused, not misread.
        assert!(parsed.body::<(Step,)>().is_err());
        assert_eq!(args_signature::<(Step,)>(), "(uus)");
        assert_eq!(args_signature::<(&str, &str, u64)>(), "sst");
        assert_eq!(args_signature::<()>(), "");

        // A Step returned alone, as mfad's Login1.Answer sends it.
        let reply = zbus::Message::method_return(&call.header())
            .expect("builder")
            .build(&step)
            .expect("reply");
        let parsed = parse(reply.data().bytes()).expect("parse");
        let fields: crate::wire::login::StepFields = parsed.body().expect("body");
        assert_eq!(crate::wire::login::step_from(fields), step);

        let error = zbus::Message::error(&call.header(), "org.pam_mfa.Error.Locked")
            .expect("builder")
            .build(&("locked out",))
            .expect("error");
        let parsed = parse(error.data().bytes()).expect("parse");
        assert_eq!(parsed.kind, Kind::Error);
        assert_eq!(
            parsed.error_name.as_deref(),
            Some("org.pam_mfa.Error.Locked")
        );
        assert_eq!(parsed.error_message(), "locked out");
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let good = call("Start")
            .encode(&(LoginRequest::default(),))
            .expect("encode");
        // Every truncation, and every single-byte corruption, is an error or
        // a message; never a panic.
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
        }
        for at in 0..good.len() {
            for value in [0u8, 0x7f, 0xff] {
                let mut bytes = good.clone();
                bytes[at] = value;
                let _ = message_length(&bytes);
                let _ = parse(&bytes);
            }
        }
        let mut huge = good.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(message_length(&huge).is_err());
        assert!(parse(b"GET / HTTP/1.1\r\n\r\n").is_err());
    }
}
