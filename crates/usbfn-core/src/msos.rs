//! Microsoft OS 2.0 descriptors: a compatible ID per interface (`compatible_id = "WINUSB"`),
//! so Windows binds a driver without an INF.
//!
//! The BOS carries a platform capability with the MS OS 2.0 UUID, the descriptor set's length
//! and the vendor code; Windows then asks for the set with a device-to-host vendor request
//! (`bRequest` = the vendor code, `wIndex` = 7), which the core answers. A device with one
//! interface gets the compatible ID at the set level; a composite device gets a configuration
//! subset per configuration and a function subset per interface that has one.

use crate::model::DeviceModel;

/// `MS_OS_20_DESCRIPTOR_INDEX`: the `wIndex` of the request for the descriptor set.
pub const DESCRIPTOR_INDEX: u16 = 7;
/// The vendor code used when the device section gives none.
pub const DEFAULT_VENDOR_CODE: u8 = 0x20;
/// `dwWindowsVersion`: Windows 8.1, the first with MS OS 2.0 descriptors.
const WINDOWS_VERSION: u32 = 0x0603_0000;
/// {D8DD60DF-4589-4CC7-9CD2-659D9E648A9F}, as the bytes go on the wire.
const PLATFORM_UUID: [u8; 16] = [
    0xdf, 0x60, 0xdd, 0xd8, 0x89, 0x45, 0xc7, 0x4c, 0x9c, 0xd2, 0x65, 0x9d, 0x9e, 0x64, 0x8a, 0x9f,
];

const SET_HEADER: u16 = 0x00;
const SUBSET_HEADER_CONFIGURATION: u16 = 0x01;
const SUBSET_HEADER_FUNCTION: u16 = 0x02;
const FEATURE_COMPATIBLE_ID: u16 = 0x03;

impl DeviceModel {
    /// The vendor code, when the device has MS OS 2.0 descriptors.
    pub fn ms_os_vendor_code(&self) -> Option<u8> {
        self.interfaces
            .iter()
            .any(|i| i.compatible_id.is_some())
            .then(|| self.device.ms_os_vendor_code.unwrap_or(DEFAULT_VENDOR_CODE))
    }

    /// The MS OS 2.0 descriptor set, when any interface has a compatible ID.
    pub fn ms_os20_descriptor_set(&self) -> Option<Vec<u8>> {
        self.ms_os_vendor_code()?;
        let mut body = Vec::new();
        let single = self.interfaces.len() == 1;
        if single {
            body.extend(compatible_id(self.interfaces[0].compatible_id?));
        } else {
            for (index, config) in self.configurations.iter().enumerate() {
                let mut functions = Vec::new();
                for f in &config.interfaces {
                    let Some(iface) = self.interface(*f) else {
                        continue;
                    };
                    let Some(id) = iface.compatible_id else {
                        continue;
                    };
                    let feature = compatible_id(id);
                    let length = 8 + feature.len();
                    functions.extend(header(8, SUBSET_HEADER_FUNCTION));
                    functions.push(iface.number);
                    functions.push(0);
                    functions.extend(u16_le(length));
                    functions.extend(feature);
                }
                if functions.is_empty() {
                    continue;
                }
                body.extend(header(8, SUBSET_HEADER_CONFIGURATION));
                // Fits: a configuration index, below MAX_CONFIGURATIONS (12).
                body.push(u8::try_from(index).unwrap_or(u8::MAX));
                body.push(0);
                body.extend(u16_le(8 + functions.len()));
                body.extend(functions);
            }
        }
        let mut set = header(10, SET_HEADER).to_vec();
        set.extend(WINDOWS_VERSION.to_le_bytes());
        set.extend(u16_le(10 + body.len()));
        set.extend(body);
        Some(set)
    }

    /// The BOS platform capability pointing at the descriptor set (28 bytes).
    pub fn ms_os20_platform_capability(&self) -> Option<Vec<u8>> {
        let code = self.ms_os_vendor_code()?;
        let total = self.ms_os20_descriptor_set()?.len();
        let mut cap = vec![28, 0x10, 0x05, 0];
        cap.extend(PLATFORM_UUID);
        cap.extend(WINDOWS_VERSION.to_le_bytes());
        cap.extend(u16_le(total));
        cap.push(code);
        cap.push(0); // bAltEnumCode
        Some(cap)
    }
}

fn header(length: u16, kind: u16) -> [u8; 4] {
    let [l0, l1] = length.to_le_bytes();
    let [k0, k1] = kind.to_le_bytes();
    [l0, l1, k0, k1]
}

/// A length field. Fits: the whole set is at most a 10-byte header, 12 configuration
/// subsets of 8 bytes and 255 function subsets of 8 + 20 bytes (compatible IDs are the only
/// feature), about 8 KiB.
fn u16_le(n: usize) -> [u8; 2] {
    u16::try_from(n).unwrap_or(u16::MAX).to_le_bytes()
}

fn compatible_id(id: [u8; 8]) -> Vec<u8> {
    let mut d = header(20, FEATURE_COMPATIBLE_ID).to_vec();
    d.extend(id);
    d.extend([0u8; 8]); // SubCompatibleID
    d
}
