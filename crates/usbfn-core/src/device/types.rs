//! The device's public types (states, service errors, class info) and the per-function and
//! control-transfer state it keeps.

use super::*;

/// USB device states (chapter 9), as GenericUSBFn's `USBFN_DEVICE_STATE` names them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DeviceState {
    /// Not connected to a host.
    Detached,
    /// Connected, not yet reset.
    Attached,
    /// Reset, address 0.
    Default,
    /// Has an address.
    Addressed,
    /// Has a configuration.
    Configured,
    /// Suspended (from any connected state).
    Suspended,
}

/// What a bus should do on the device's behalf.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BusRequest {
    /// A service deactivated the bus: disconnect the host.
    Disconnect,
    /// The device became ready (every service activated): it may be offered to hosts.
    Ready,
}

/// Why a service request was refused. Each maps to one NTSTATUS.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// A parameter is wrong (unknown pipe, wrong direction, bad index).
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The request does not fit the device's state (not configured, no setup pending, ...).
    #[error("invalid device state: {0}")]
    InvalidDeviceState(String),
    /// The pipe belongs to another interface.
    #[error("pipe {pipe} belongs to interface {owner:?}, not to this one")]
    NotOwner {
        /// The pipe.
        pipe: u32,
        /// Its owner.
        owner: String,
    },
    /// A limit was hit.
    #[error("limit exceeded: {what} (limit {limit})")]
    LimitExceeded {
        /// What.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// Not supported by usbfn.
    #[error("not supported: {0}")]
    NotSupported(&'static str),
}

impl ServiceError {
    /// The NTSTATUS for this refusal.
    pub fn to_ntstatus(&self) -> usbfn_abi::NtStatus {
        use usbfn_abi::NtStatus;
        match self {
            ServiceError::InvalidParameter(_) | ServiceError::NotOwner { .. } => {
                NtStatus::STATUS_INVALID_PARAMETER
            }
            ServiceError::InvalidDeviceState(_) => NtStatus::STATUS_INVALID_DEVICE_STATE,
            ServiceError::LimitExceeded { .. } => NtStatus::STATUS_INSUFFICIENT_RESOURCES,
            ServiceError::NotSupported(_) => NtStatus::STATUS_NOT_SUPPORTED,
        }
    }
}

/// The two directions a control status handshake can be named by.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// `CONTROL_STATUS_HANDSHAKE_IN`.
    In,
    /// `CONTROL_STATUS_HANDSHAKE_OUT`.
    Out,
}

/// Pipes of one interface at one speed, as `GET_CLASS_INFO` reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassInterfaceInfo {
    /// bInterfaceNumber.
    pub interface_number: u8,
    /// Data pipes (pipe 0 is implicit): the endpoint descriptor at this speed (of the first
    /// alternate setting that declares the address) and the pipe id.
    pub pipes: Vec<(EndpointDescriptor, PipeId)>,
}

/// `GET_CLASS_INFO` for one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassInfo {
    /// Per speed: full, high, super.
    pub per_speed: [ClassInterfaceInfo; 3],
    /// InterfaceName.
    pub name: String,
    /// InterfaceGuid.
    pub guid: Option<String>,
}

impl ClassInfo {
    /// The pipes at `speed`.
    pub fn at(&self, speed: BusSpeed) -> &ClassInterfaceInfo {
        &self.per_speed[speed.index()]
    }

    /// The first pipe at `speed` of `transfer_type` in `direction`, with its packet size
    /// (`wMaxPacketSize` bits 10..0): how a function finds its pipes on whatever interface
    /// of a composite device it runs.
    pub fn find_pipe(
        &self,
        speed: BusSpeed,
        transfer_type: TransferType,
        direction: Direction,
    ) -> Option<(PipeId, usize)> {
        self.find_pipe_where(speed, |d| {
            d.transfer_type() == transfer_type && d.b_endpoint_address.direction() == direction
        })
    }

    /// As [`ClassInfo::find_pipe`], for the first endpoint descriptor `matches` accepts.
    pub fn find_pipe_where(
        &self,
        speed: BusSpeed,
        matches: impl Fn(&EndpointDescriptor) -> bool,
    ) -> Option<(PipeId, usize)> {
        self.at(speed)
            .pipes
            .iter()
            .find(|(d, _)| matches(d))
            .map(|(d, p)| (*p, usize::from(d.max_packet_size() & 0x7ff)))
    }
}

#[derive(Debug, Default)]
pub(crate) struct FunctionState {
    pub(crate) active: bool,
    pub(crate) events: VecDeque<BusEvent>,
    pub(crate) dropped_events: u64,
    /// An IN data stage was answered and the URB completed; a status handshake may follow.
    pub(crate) handshake_owed: bool,
}

#[derive(Debug)]
pub(crate) struct ControlUrb {
    pub(crate) id: UrbId,
    pub(crate) setup: SetupPacket,
    pub(crate) data: Bytes,
    pub(crate) buffer_len: usize,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum SetupStage {
    /// Waiting for the service's data-stage transfer on pipe 0.
    Data,
    /// OUT data was delivered; waiting for the status handshake.
    Status,
}

#[derive(Debug)]
pub(crate) struct PendingSetup {
    pub(crate) urb: ControlUrb,
    pub(crate) function: FunctionId,
    pub(crate) stage: SetupStage,
    pub(crate) deadline: Instant,
}

/// The default control pipe: the control URB being answered (its setup forwarded to a
/// service, or its data stage under way) and the ones queued behind it, answered in order.
/// A service's owed status handshake is kept per function ([`FunctionState`]).
#[derive(Debug, Default)]
pub(crate) struct ControlPipe {
    /// Control URBs waiting behind `pending` (at most `MAX_QUEUED_CONTROL_URBS`).
    pub(crate) queue: VecDeque<ControlUrb>,
    /// The control transfer in progress.
    pub(crate) pending: Option<PendingSetup>,
}

impl ControlPipe {
    /// Take every control URB, the one in progress first: their IDs, to fail them.
    pub(crate) fn drain(&mut self) -> Vec<UrbId> {
        let pending = self.pending.take().map(|p| p.urb.id);
        pending
            .into_iter()
            .chain(self.queue.drain(..).map(|u| u.id))
            .collect()
    }

    /// When the setup packet in progress expires, if one is.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.deadline)
    }
}
