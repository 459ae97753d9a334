//! What one usbmon event says: [`UsbRecord`] and its parts.

use std::time::{Duration, SystemTime};

/// `-EINPROGRESS`: the status usbmon writes on every submit event.
#[doc(alias = "EINPROGRESS")]
pub const STATUS_IN_PROGRESS: i32 = -115;

/// The direction bit of an endpoint address (`USB_DIR_IN`).
pub const ENDPOINT_DIR_IN: u8 = 0x80;

/// The kind of usbmon event.
#[doc(alias = "type")]
#[doc(alias = "event_type")]
#[doc(alias = "urb_type")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `'S'`: the host submitted the URB.
    Submit,
    /// `'C'`: the URB completed (the "callback").
    Complete,
    /// `'E'`: the submission failed; the URB never reached the device.
    Error,
}

/// The URB's transfer type, numbered as usbmon numbers it (not as the endpoint descriptor does).
#[doc(alias = "xfer_type")]
#[doc(alias = "transfer_type")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XferType {
    /// 0.
    Isochronous,
    /// 1.
    Interrupt,
    /// 2.
    Control,
    /// 3.
    Bulk,
}

/// One isochronous packet descriptor (`struct mon_bin_isodesc`, 16 bytes in the file, the last
/// four being padding).
#[doc(alias = "mon_bin_isodesc")]
#[doc(alias = "usb_isodesc")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IsoDesc {
    /// The packet's status (0, or a negative errno).
    #[doc(alias = "iso_status")]
    pub status: i32,
    /// Where the packet's bytes start, relative to the start of the record's data.
    #[doc(alias = "iso_off")]
    pub offset: u32,
    /// The packet's length: requested on submit, actual on completion.
    #[doc(alias = "iso_len")]
    pub length: u32,
}

/// The identity and address of one URB, shared by its submit and completion records: build it
/// once per URB and derive both records from it with [`UsbRecord::submit`] and
/// [`UsbRecord::complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Urb {
    /// Tags the URB: the submit and completion of one URB must carry the same id, and no two
    /// URBs in flight at the same time may share one (Wireshark pairs requests and responses
    /// by it). usbmon uses the kernel address of the URB; a bus can use its sequence number.
    #[doc(alias = "urb_id")]
    pub id: u64,
    /// The transfer type.
    #[doc(alias = "xfer_type")]
    pub transfer_type: XferType,
    /// The endpoint address, with [`ENDPOINT_DIR_IN`] set for IN transfers (also on endpoint
    /// 0: a control transfer with an IN data stage is `0x80`).
    #[doc(alias = "epnum")]
    #[doc(alias = "endpoint_address")]
    pub endpoint: u8,
    /// The device address on its bus.
    #[doc(alias = "device_address")]
    pub devnum: u8,
    /// The bus number.
    #[doc(alias = "bus_id")]
    pub busnum: u16,
}

/// One usbmon event: a URB submit, completion or submission error.
///
/// Every field goes to the file as given ([`crate::encode_record`] documents the few that are
/// derived or clamped). usbmon's conventions, which Wireshark's dissector relies on:
///
/// - a submit carries the OUT data (or nothing, for IN), `status` [`STATUS_IN_PROGRESS`] and
///   `urb_length` = the transfer buffer length; a control submit also carries the setup packet;
/// - a completion carries the IN data (or nothing, for OUT), the final status and
///   `urb_length` = the actual length transferred;
/// - `interval` is set for interrupt and isochronous transfers, `start_frame` and `iso` for
///   isochronous ones only.
///
/// [`UsbRecord::submit`], [`UsbRecord::complete`] and [`UsbRecord::error`] follow them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsbRecord<'a> {
    /// The URB's tag (see [`Urb::id`]).
    #[doc(alias = "urb_id")]
    pub id: u64,
    /// Submit, completion or error.
    #[doc(alias = "type")]
    #[doc(alias = "urb_type")]
    pub event: EventType,
    /// The transfer type.
    #[doc(alias = "xfer_type")]
    pub transfer_type: XferType,
    /// The endpoint address, with [`ENDPOINT_DIR_IN`] set for IN.
    #[doc(alias = "epnum")]
    #[doc(alias = "endpoint_address")]
    pub endpoint: u8,
    /// The device address.
    #[doc(alias = "device_address")]
    pub devnum: u8,
    /// The bus number.
    #[doc(alias = "bus_id")]
    pub busnum: u16,
    /// The setup packet, for a control submit. `Some` writes `flag_setup` = 0 and the eight
    /// bytes; `None` writes `flag_setup` = `'-'`.
    #[doc(alias = "flag_setup")]
    #[doc(alias = "setup_flag")]
    pub setup: Option<[u8; 8]>,
    /// [`STATUS_IN_PROGRESS`] on submit, then 0 or a negative errno (`-32` `-EPIPE`: stall).
    #[doc(alias = "urb_status")]
    pub status: i32,
    /// The URB length: the transfer buffer length on submit, the actual length on completion.
    #[doc(alias = "length")]
    #[doc(alias = "len_urb")]
    #[doc(alias = "urb_len")]
    pub urb_length: u32,
    /// The data to capture; cut to the writer's snaplen (`len_cap` says how much was kept).
    #[doc(alias = "len_cap")]
    #[doc(alias = "data_len")]
    #[doc(alias = "flag_data")]
    pub data: &'a [u8],
    /// When the event happened, since the Unix epoch ([`unix_time`] converts a `SystemTime`).
    #[doc(alias = "ts_sec")]
    #[doc(alias = "ts_usec")]
    pub timestamp: Duration,
    /// The polling interval, for interrupt and isochronous transfers.
    pub interval: i32,
    /// The start frame, for isochronous transfers.
    pub start_frame: i32,
    /// The URB's `transfer_flags` (Linux `URB_*` bits; 0 is fine).
    #[doc(alias = "xfer_flags")]
    pub transfer_flags: u32,
    /// The isochronous error count (written with `iso` when there is no `setup`).
    #[doc(alias = "error_count")]
    pub iso_error_count: i32,
    /// The isochronous packet descriptors; at most [`crate::MAX_ISO_DESCRIPTORS`] are written.
    #[doc(alias = "ndesc")]
    #[doc(alias = "numdesc")]
    #[doc(alias = "isodesc")]
    pub iso: &'a [IsoDesc],
}

impl EventType {
    /// The byte usbmon writes: `b'S'`, `b'C'` or `b'E'`.
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Submit => b'S',
            Self::Complete => b'C',
            Self::Error => b'E',
        }
    }
}

impl XferType {
    /// The number usbmon writes: 0 isochronous, 1 interrupt, 2 control, 3 bulk.
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Isochronous => 0,
            Self::Interrupt => 1,
            Self::Control => 2,
            Self::Bulk => 3,
        }
    }
}

impl<'a> UsbRecord<'a> {
    /// The submit of `urb`: status [`STATUS_IN_PROGRESS`], `urb_length` = the transfer buffer
    /// length, `data` = the OUT data (pass `&[]` for IN, whose buffer is still empty).
    /// Add the setup packet of a control transfer with [`UsbRecord::with_setup`].
    pub fn submit(
        urb: &Urb,
        timestamp: Duration,
        transfer_buffer_length: u32,
        data: &'a [u8],
    ) -> Self {
        Self::new(
            urb,
            EventType::Submit,
            timestamp,
            STATUS_IN_PROGRESS,
            transfer_buffer_length,
            data,
        )
    }

    /// The completion of `urb`: its final `status`, `urb_length` = the actual length
    /// transferred, `data` = the IN data received (pass `&[]` for OUT).
    pub fn complete(
        urb: &Urb,
        timestamp: Duration,
        status: i32,
        actual_length: u32,
        data: &'a [u8],
    ) -> Self {
        Self::new(
            urb,
            EventType::Complete,
            timestamp,
            status,
            actual_length,
            data,
        )
    }

    /// A submission error for `urb` (usbmon's `'E'` event): the URB was refused with `status`
    /// and never reached the device.
    pub fn error(urb: &Urb, timestamp: Duration, status: i32) -> Self {
        Self::new(urb, EventType::Error, timestamp, status, 0, &[])
    }

    /// This record with a setup packet (for a control submit).
    #[must_use]
    pub fn with_setup(self, setup: [u8; 8]) -> Self {
        Self {
            setup: Some(setup),
            ..self
        }
    }

    /// This record with a polling interval (interrupt and isochronous transfers).
    #[must_use]
    pub fn with_interval(self, interval: i32) -> Self {
        Self { interval, ..self }
    }

    /// This record with isochronous packet descriptors, start frame and error count.
    #[must_use]
    pub fn with_iso(self, iso: &'a [IsoDesc], start_frame: i32, error_count: i32) -> Self {
        Self {
            iso,
            start_frame,
            iso_error_count: error_count,
            ..self
        }
    }

    /// This record with the URB's Linux `transfer_flags`.
    #[must_use]
    pub fn with_transfer_flags(self, transfer_flags: u32) -> Self {
        Self {
            transfer_flags,
            ..self
        }
    }

    /// Whether the endpoint address has the IN bit.
    pub const fn is_in(&self) -> bool {
        self.endpoint & ENDPOINT_DIR_IN != 0
    }

    fn new(
        urb: &Urb,
        event: EventType,
        timestamp: Duration,
        status: i32,
        urb_length: u32,
        data: &'a [u8],
    ) -> Self {
        Self {
            id: urb.id,
            event,
            transfer_type: urb.transfer_type,
            endpoint: urb.endpoint,
            devnum: urb.devnum,
            busnum: urb.busnum,
            setup: None,
            status,
            urb_length,
            data,
            timestamp,
            interval: 0,
            start_frame: 0,
            transfer_flags: 0,
            iso_error_count: 0,
            iso: &[],
        }
    }
}

/// `t` as time since the Unix epoch; a time before the epoch gives zero.
pub fn unix_time(t: SystemTime) -> Duration {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// Packed iso IN bytes laid out at their packets' offsets, as far as the last non-empty
/// packet's end: what usbmon's `mon_bin_collate_isodesc` captures, while USB/IP and the core
/// pack the packets back to back. `descs` are the completion's (`length` = actual length);
/// bytes missing from `packed` stay 0. A span beyond `max_span` bytes is returned packed, as
/// it came.
pub fn spread_iso_in(descs: &[IsoDesc], packed: &[u8], max_span: u64) -> Vec<u8> {
    let end = descs
        .iter()
        .filter(|d| d.length > 0)
        .map(|d| u64::from(d.offset) + u64::from(d.length))
        .max()
        .unwrap_or(0);
    let Some(end) = usize::try_from(end).ok().filter(|_| end <= max_span) else {
        return packed.to_vec();
    };
    let mut out = vec![0u8; end];
    let mut at = 0usize;
    for d in descs {
        let len = usize::try_from(d.length).unwrap_or(0);
        let off = usize::try_from(d.offset).unwrap_or(usize::MAX);
        if let (Some(src), Some(dst)) = (
            packed.get(at..at.saturating_add(len)),
            out.get_mut(off..off.saturating_add(len)),
        ) {
            dst.copy_from_slice(src);
        }
        at = at.saturating_add(len);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const URB: Urb = Urb {
        id: 7,
        transfer_type: XferType::Bulk,
        endpoint: 0x81,
        devnum: 2,
        busnum: 1,
    };

    #[test]
    fn wire_values() {
        assert_eq!(
            [EventType::Submit, EventType::Complete, EventType::Error].map(EventType::as_u8),
            *b"SCE"
        );
        assert_eq!(
            [
                XferType::Isochronous,
                XferType::Interrupt,
                XferType::Control,
                XferType::Bulk
            ]
            .map(XferType::as_u8),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn constructors_follow_usbmon() {
        let t = Duration::from_micros(1_500_000);
        let s = UsbRecord::submit(&URB, t, 512, &[]);
        assert_eq!(
            (s.event, s.status, s.urb_length, s.data),
            (EventType::Submit, -115, 512, &[][..])
        );
        assert_eq!(
            (s.id, s.endpoint, s.devnum, s.busnum, s.timestamp),
            (7, 0x81, 2, 1, t)
        );
        assert!(s.is_in() && s.setup.is_none() && s.iso.is_empty());

        let c = UsbRecord::complete(&URB, t, 0, 3, &[1, 2, 3]);
        assert_eq!(
            (c.event, c.status, c.urb_length, c.data),
            (EventType::Complete, 0, 3, &[1, 2, 3][..])
        );

        let e = UsbRecord::error(&URB, t, -19);
        assert_eq!(
            (e.event, e.status, e.urb_length),
            (EventType::Error, -19, 0)
        );

        let iso = [IsoDesc {
            status: 0,
            offset: 0,
            length: 8,
        }];
        let r = s
            .with_setup([1; 8])
            .with_interval(4)
            .with_iso(&iso, 10, 1)
            .with_transfer_flags(0x200);
        assert_eq!(r.setup, Some([1; 8]));
        assert_eq!(
            (
                r.interval,
                r.start_frame,
                r.iso_error_count,
                r.transfer_flags
            ),
            (4, 10, 1, 0x200)
        );
        assert_eq!(r.iso, &iso);
    }

    #[test]
    fn unix_time_clamps_before_epoch() {
        assert_eq!(
            unix_time(SystemTime::UNIX_EPOCH + Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        let before = SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(5));
        assert_eq!(before.map(unix_time), Some(Duration::ZERO));
    }

    #[test]
    fn iso_in_spreads_to_offsets_within_the_cap_only() {
        let d = |offset, length| IsoDesc {
            status: 0,
            offset,
            length,
        };
        let descs = [d(0, 2), d(4, 0), d(8, 3)];
        assert_eq!(
            spread_iso_in(&descs, &[1, 2, 7, 8, 9], 64),
            vec![1, 2, 0, 0, 0, 0, 0, 0, 7, 8, 9]
        );
        assert_eq!(
            spread_iso_in(&descs, &[1, 2, 7, 8, 9], 10),
            vec![1, 2, 7, 8, 9]
        );
    }
}
