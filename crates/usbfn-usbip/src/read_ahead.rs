//! Room for the next socket read, shared by the server's and the client's read loops.
//!
//! Two costs pull against each other. A read into a buffer with little spare room ends at
//! that room: replies of a few KiB then cost a `read` each, or two when a read ends inside a
//! header (measured: 1.6 reads per 4 KiB RET_SUBMIT). But room beyond the message being read
//! costs a copy later: a read that runs past a large message's end leaves the start of the
//! next one in an allocation the large payload still uses, and that start has to be copied
//! into a fresh buffer before its own payload can follow. So the loops read ahead while the
//! messages are small (their copies are cheap and the saved reads are not), and read large
//! messages exactly (header, then the payload into the room its decoder reserved, in place).

use bytes::BytesMut;

/// Room a read may fill when reading ahead.
pub(crate) const READ_AHEAD: usize = 64 * 1024;
/// Read ahead only below this much spare room...
const LOW_WATER: usize = READ_AHEAD / 4;
/// ...while the buffer holds at most this many bytes (what growing it may copy)...
const COPY_AT_MOST: usize = 4096;
/// ...and while the messages decoded last averaged at most this many bytes.
const SMALL_MESSAGE: usize = 16 * 1024;

/// One read loop's read-ahead state.
#[derive(Debug)]
pub(crate) struct ReadAhead {
    small_messages: bool,
}

impl Default for ReadAhead {
    fn default() -> Self {
        ReadAhead {
            small_messages: true,
        }
    }
}

impl ReadAhead {
    /// Make room for the next read of `buf` (see the module docs).
    pub(crate) fn make_room(&self, buf: &mut BytesMut) {
        if self.small_messages
            && buf.capacity() - buf.len() < LOW_WATER
            && buf.len() <= COPY_AT_MOST
        {
            buf.reserve(READ_AHEAD);
        }
    }

    /// `messages` messages of `bytes` bytes in all were decoded from the buffer.
    pub(crate) fn decoded(&mut self, bytes: usize, messages: usize) {
        if let Some(average) = bytes.checked_div(messages) {
            self.small_messages = average <= SMALL_MESSAGE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ahead_while_messages_are_small() {
        let mut ahead = ReadAhead::default();
        ahead.decoded(16 * (48 + 4096), 16);
        let mut buf = BytesMut::with_capacity(128);
        buf.extend_from_slice(&[0; 96]);
        ahead.make_room(&mut buf);
        assert!(buf.capacity() - buf.len() >= READ_AHEAD);
    }

    #[test]
    fn reads_large_messages_exactly() {
        let mut ahead = ReadAhead::default();
        ahead.decoded(48 + 65536, 1);
        let mut buf = BytesMut::with_capacity(48);
        ahead.make_room(&mut buf);
        assert_eq!(buf.capacity(), 48, "room for the header only");
        // Nothing decoded (a partial message) keeps the last verdict.
        ahead.decoded(0, 0);
        ahead.make_room(&mut buf);
        assert_eq!(buf.capacity(), 48);
    }

    #[test]
    fn leaves_a_large_partial_message_in_place() {
        let ahead = ReadAhead::default();
        // A 64 KiB payload with 60 KiB in and the exact room for the rest reserved.
        let mut buf = BytesMut::with_capacity(64 * 1024 + 48);
        buf.extend_from_slice(&[0; 60 * 1024]);
        let (ptr, cap) = (buf.as_ptr(), buf.capacity());
        ahead.make_room(&mut buf);
        assert_eq!(
            (buf.as_ptr(), buf.capacity()),
            (ptr, cap),
            "not moved or grown"
        );
    }

    #[test]
    fn leaves_enough_room_alone() {
        let ahead = ReadAhead::default();
        let mut buf = BytesMut::with_capacity(READ_AHEAD);
        buf.extend_from_slice(&[0; 100]);
        let cap = buf.capacity();
        ahead.make_room(&mut buf);
        assert_eq!(buf.capacity(), cap);
    }
}
