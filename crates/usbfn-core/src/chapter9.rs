//! Chapter 9: the standard requests the core answers itself, and the routing of everything
//! else to the service that owns it.
//!
//! Routing (GenericUSBFn forwards class requests to interfaces; usbfn also forwards vendor
//! requests and standard requests it does not answer):
//!
//! | request | recipient | goes to |
//! |---|---|---|
//! | standard | any | answered here; interface-recipient requests other than GET_STATUS, SET/CLEAR_FEATURE, GET/SET_INTERFACE go to the interface's service (e.g. HID GET_DESCRIPTOR(report)), except GET_DESCRIPTOR(HID 0x21), answered from the alternate setting's `class_descriptors` when it has one |
//! | class, vendor | interface (wIndex low byte) | the interface's service |
//! | class, vendor | endpoint (wIndex low byte) | the service owning the endpoint |
//! | vendor IN, device, `bRequest` = the MS OS 2.0 vendor code, `wIndex` 7 | device | answered here with the MS OS 2.0 descriptor set (when an interface has a `compatible_id`) |
//! | class, vendor | device, other | the interface marked `device_request_owner` |
//! | anything else | | STALL |

use bytes::Bytes;
use usbfn_wire::{
    DescriptorType, Direction, EndpointAddress, FeatureSelector, Recipient, RequestType,
    SetupPacket, StandardRequest, TransferType,
};

use crate::device::{Device, DeviceState, address_index};
use crate::event::BusEvent;
use crate::types::{BusSpeed, FunctionId};

/// The core's answer to a setup packet.
#[derive(Debug)]
pub(crate) enum Reply {
    /// IN data (truncated to wLength by the caller).
    Data(Bytes),
    /// Status stage only (or OUT data accepted).
    Ack,
    /// Request error.
    Stall,
    /// A service answers it.
    Forward(FunctionId),
}

/// The `index`th descriptor of type `t` in a chain of class-specific descriptors.
fn class_descriptor(chain: &[u8], t: DescriptorType, index: usize) -> Option<&[u8]> {
    usbfn_wire::descriptors(chain)
        .map_while(Result::ok)
        .filter(|d| d.descriptor_type == t)
        .nth(index)
        .map(|d| d.bytes)
}

impl Device {
    pub(crate) fn handle_setup(&mut self, setup: &SetupPacket, data: &Bytes) -> Reply {
        if let Some(set) = self.ms_os20_request(setup) {
            return Reply::Data(Bytes::from(set));
        }
        match setup.request_type() {
            RequestType::Standard => self.standard(setup, data),
            RequestType::Class | RequestType::Vendor => self.route_to_owner(setup),
            RequestType::Reserved => Reply::Stall,
        }
    }

    /// The MS OS 2.0 descriptor set, if `setup` asks for it (a device-to-host vendor request
    /// to the device with the vendor code of the BOS platform capability and wIndex 7).
    fn ms_os20_request(&self, setup: &SetupPacket) -> Option<Vec<u8>> {
        let code = self.model.ms_os_vendor_code()?;
        (setup.request_type() == RequestType::Vendor
            && setup.recipient() == Recipient::Device
            && setup.direction() == Direction::In
            && setup.b_request == code
            && setup.w_index == crate::msos::DESCRIPTOR_INDEX)
            .then(|| self.model.ms_os20_descriptor_set())
            .flatten()
    }

    fn route_to_owner(&self, setup: &SetupPacket) -> Reply {
        let owner = match setup.recipient() {
            Recipient::Interface => self.interface_owner(low_byte(setup.w_index)),
            Recipient::Endpoint => self.endpoint_owner(EndpointAddress(low_byte(setup.w_index))),
            Recipient::Device | Recipient::Other => self.model.device_request_owner(),
            Recipient::Reserved(_) => None,
        };
        owner.map_or(Reply::Stall, Reply::Forward)
    }

    /// The function owning interface `number` in the active configuration (or, before
    /// configuration, the first).
    fn interface_owner(&self, number: u8) -> Option<FunctionId> {
        self.model
            .function_by_number(self.configuration.unwrap_or(0), number)
    }

    fn endpoint_owner(&self, address: EndpointAddress) -> Option<FunctionId> {
        let pipe = self.active[address_index(address)]?;
        self.model
            .pipes
            .get(usize::try_from(pipe.0).ok()?)
            .map(|p| p.function)
    }

    fn standard(&mut self, setup: &SetupPacket, data: &Bytes) -> Reply {
        let request = StandardRequest(setup.b_request);
        match setup.recipient() {
            Recipient::Device => self.standard_device(setup, request, data),
            Recipient::Interface => self.standard_interface(setup, request),
            Recipient::Endpoint => self.standard_endpoint(setup, request),
            _ => Reply::Stall,
        }
    }

    fn standard_device(
        &mut self,
        setup: &SetupPacket,
        request: StandardRequest,
        _data: &Bytes,
    ) -> Reply {
        let dir = setup.direction();
        match (request, dir) {
            (StandardRequest::GET_STATUS, Direction::In) => {
                let mut status = 0u8;
                if self.model.device().self_powered {
                    status |= 1;
                }
                if self.remote_wakeup_enabled {
                    status |= 2;
                }
                Reply::Data(Bytes::copy_from_slice(&[status, 0]))
            }
            (StandardRequest::CLEAR_FEATURE | StandardRequest::SET_FEATURE, Direction::Out) => {
                let set = request == StandardRequest::SET_FEATURE;
                match FeatureSelector(setup.w_value) {
                    FeatureSelector::DEVICE_REMOTE_WAKEUP if self.model.device().remote_wakeup => {
                        self.remote_wakeup_enabled = set;
                        Reply::Ack
                    }
                    FeatureSelector::TEST_MODE
                        if set && (1..=5).contains(&(setup.w_index >> 8)) =>
                    {
                        self.test_mode = u8::try_from(setup.w_index >> 8).ok();
                        Reply::Ack
                    }
                    // U1/U2 enable and LTM at SuperSpeed: accepted, nothing to do virtually.
                    FeatureSelector(48..=50) if self.speed == BusSpeed::Super => Reply::Ack,
                    _ => Reply::Stall,
                }
            }
            (StandardRequest::SET_ADDRESS, Direction::Out) => {
                if setup.w_value > 127 || self.state == DeviceState::Configured {
                    return Reply::Stall;
                }
                self.address = low_byte(setup.w_value);
                self.state = if self.address == 0 {
                    DeviceState::Default
                } else {
                    DeviceState::Addressed
                };
                Reply::Ack
            }
            (StandardRequest::GET_DESCRIPTOR, Direction::In) => self.get_descriptor(setup),
            (StandardRequest::GET_CONFIGURATION, Direction::In) => {
                Reply::Data(Bytes::copy_from_slice(&[self
                    .configuration_value()
                    .unwrap_or(0)]))
            }
            (StandardRequest::SET_CONFIGURATION, Direction::Out) => {
                self.set_configuration(low_byte(setup.w_value))
            }
            (StandardRequest::SET_SEL | StandardRequest::SET_ISOCH_DELAY, Direction::Out) => {
                Reply::Ack
            }
            _ => Reply::Stall,
        }
    }

    fn get_descriptor(&mut self, setup: &SetupPacket) -> Reply {
        let kind = DescriptorType(setup.w_value.to_be_bytes()[0]);
        let index = usize::from(low_byte(setup.w_value));
        let set = &self.sets[self.speed.index()];
        let bytes = match kind {
            DescriptorType::DEVICE => Some(set.device.clone()),
            DescriptorType::CONFIGURATION => set.configurations.get(index).cloned(),
            DescriptorType::OTHER_SPEED_CONFIGURATION => set.other_speed.get(index).cloned(),
            DescriptorType::DEVICE_QUALIFIER => set.qualifier.clone(),
            DescriptorType::BOS => set.bos.clone(),
            DescriptorType::STRING => self.string_descriptor(index),
            DescriptorType(t) if t >= 0x20 => {
                // Class or vendor descriptor types asked of the device.
                return self
                    .model
                    .device_request_owner()
                    .map_or(Reply::Stall, Reply::Forward);
            }
            _ => None,
        };
        bytes.map_or(Reply::Stall, |b| Reply::Data(Bytes::from(b)))
    }

    fn string_descriptor(&self, index: usize) -> Option<Vec<u8>> {
        if index == 0 {
            return usbfn_wire::encode_langid_descriptor(&[self.model.device().language_id]).ok();
        }
        let text = self.strings.get(&u8::try_from(index).ok()?)?;
        usbfn_wire::encode_string_descriptor(text).ok()
    }

    fn set_configuration(&mut self, value: u8) -> Reply {
        if matches!(self.state, DeviceState::Detached | DeviceState::Attached) {
            return Reply::Stall;
        }
        let target = if value == 0 {
            None
        } else {
            match self.model.configuration_index(value) {
                Some(c) => Some(c),
                None => return Reply::Stall,
            }
        };
        if let Some(old) = self.configuration.take() {
            for f in self.model.configurations[old].interfaces.clone() {
                self.abort_function_pipes(f);
                self.notify(f, BusEvent::UnConfigured);
            }
            self.active = [None; 32];
        }
        match target {
            None => {
                self.state = if self.address == 0 {
                    DeviceState::Default
                } else {
                    DeviceState::Addressed
                };
                if self.state == DeviceState::Default {
                    // USB/IP hosts never send SET_ADDRESS (vhci emulates it): a device that
                    // answered SET_CONFIGURATION has been addressed.
                    self.state = DeviceState::Addressed;
                }
            }
            Some(c) => {
                self.configuration = Some(c);
                self.state = DeviceState::Configured;
                for f in self.model.configurations[c].interfaces.clone() {
                    self.alternates[f.0] = 0;
                    self.activate_pipes(f);
                    self.notify(f, BusEvent::Configured(u16::from(value)));
                }
            }
        }
        Reply::Ack
    }

    fn standard_interface(&mut self, setup: &SetupPacket, request: StandardRequest) -> Reply {
        let number = low_byte(setup.w_index);
        let Some(f) = (if self.state == DeviceState::Configured {
            self.interface_owner(number)
        } else {
            None
        }) else {
            return Reply::Stall;
        };
        match (request, setup.direction()) {
            (StandardRequest::GET_STATUS, Direction::In) => {
                Reply::Data(Bytes::copy_from_slice(&[0, 0]))
            }
            (StandardRequest::GET_INTERFACE, Direction::In) => {
                Reply::Data(Bytes::copy_from_slice(&[self.alternates[f.0]]))
            }
            (StandardRequest::SET_INTERFACE, Direction::Out) => {
                let count = self.model.interfaces[f.0].alternates.len();
                let Some(alt) = u8::try_from(setup.w_value)
                    .ok()
                    .filter(|a| usize::from(*a) < count)
                else {
                    return Reply::Stall;
                };
                self.abort_function_pipes(f);
                self.alternates[f.0] = alt;
                self.activate_pipes(f);
                self.notify(
                    f,
                    BusEvent::SetInterface {
                        interface: u16::from(number),
                        alternate: u16::from(alt),
                    },
                );
                Reply::Ack
            }
            // FUNCTION_SUSPEND at SuperSpeed.
            (StandardRequest::SET_FEATURE | StandardRequest::CLEAR_FEATURE, Direction::Out)
                if setup.w_value == 0 && self.speed == BusSpeed::Super =>
            {
                Reply::Ack
            }
            (StandardRequest::SET_FEATURE | StandardRequest::CLEAR_FEATURE, _) => Reply::Stall,
            // HID 1.11 §7.1.1: the HID descriptor is the one in the configuration; a device
            // answers it from there, as the Linux gadget f_hid does.
            (StandardRequest::GET_DESCRIPTOR, Direction::In)
                if DescriptorType(setup.w_value.to_be_bytes()[0]) == DescriptorType::HID =>
            {
                let chain = self.model.interfaces.get(f.0).and_then(|i| {
                    let alt = self.alternates.get(f.0).copied().unwrap_or(0);
                    i.alternates.get(usize::from(alt))
                });
                let index = usize::from(low_byte(setup.w_value));
                match chain.and_then(|a| {
                    class_descriptor(&a.class_descriptors, DescriptorType::HID, index)
                }) {
                    Some(bytes) => Reply::Data(Bytes::copy_from_slice(bytes)),
                    None => Reply::Forward(f),
                }
            }
            _ => Reply::Forward(f),
        }
    }

    fn standard_endpoint(&mut self, setup: &SetupPacket, request: StandardRequest) -> Reply {
        let address = EndpointAddress(low_byte(setup.w_index));
        if address.number() == 0 {
            return match (request, setup.direction()) {
                (StandardRequest::GET_STATUS, Direction::In) => {
                    Reply::Data(Bytes::copy_from_slice(&[0, 0]))
                }
                (StandardRequest::CLEAR_FEATURE | StandardRequest::SET_FEATURE, Direction::Out)
                    if FeatureSelector(setup.w_value) == FeatureSelector::ENDPOINT_HALT =>
                {
                    Reply::Ack
                }
                _ => Reply::Stall,
            };
        }
        if self.state != DeviceState::Configured || setup.w_index & 0xff70 != 0 {
            return Reply::Stall;
        }
        let Some(pipe_id) = self.active[address_index(address)] else {
            return Reply::Stall;
        };
        let Some(index) = usize::try_from(pipe_id.0)
            .ok()
            .filter(|i| *i < self.pipes.len())
        else {
            return Reply::Stall;
        };
        match (request, setup.direction()) {
            (StandardRequest::GET_STATUS, Direction::In) => Reply::Data(Bytes::copy_from_slice(&[
                u8::from(self.pipes[index].halted),
                0,
            ])),
            (StandardRequest::CLEAR_FEATURE, Direction::Out)
                if FeatureSelector(setup.w_value) == FeatureSelector::ENDPOINT_HALT =>
            {
                self.pipes[index].clear_halt(&mut self.out);
                Reply::Ack
            }
            (StandardRequest::SET_FEATURE, Direction::Out)
                if FeatureSelector(setup.w_value) == FeatureSelector::ENDPOINT_HALT
                    && self.pipes[index].transfer_type != TransferType::Isochronous =>
            {
                // Isochronous endpoints have no halt (USB 2.0 9.4.5): SET_FEATURE stalls.
                self.pipes[index].set_halt(&mut self.out);
                Reply::Ack
            }
            (StandardRequest::SYNCH_FRAME, Direction::In)
                if self.pipes[index].transfer_type == TransferType::Isochronous =>
            {
                Reply::Data(Bytes::copy_from_slice(&[0, 0]))
            }
            _ => Reply::Stall,
        }
    }
}

fn low_byte(v: u16) -> u8 {
    v.to_le_bytes()[0]
}
