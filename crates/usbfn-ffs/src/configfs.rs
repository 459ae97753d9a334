//! The configfs side: create the gadget from the device model, bind it to a UDC, and tear
//! it down again — the gadget this process made, or one a crashed run left behind.
//!
//! Layout (`G = /sys/kernel/config/usb_gadget/usbfn-<udc>`):
//! `G/{idVendor,idProduct,bcdDevice,bcdUSB,bDeviceClass,...}`, `G/strings/<lang>/...`,
//! `G/configs/c.<value>/{MaxPower,bmAttributes,strings/<lang>/configuration}`,
//! `G/functions/ffs.<instance>` linked into the configuration, each mounted (functionfs,
//! source `<instance>`) at `<mount_root>/<instance>`. The owner's pid is kept in
//! `<mount_root>/<gadget>.pid`, so a later start can tell a live owner from a crashed one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use usbfn_core::{BusSpeed, DeviceModel};

use crate::error::FfsError;
use crate::sys;

/// Where configfs keeps gadgets.
pub const GADGET_ROOT: &str = "/sys/kernel/config/usb_gadget";
/// Where the kernel lists device controllers.
pub const UDC_ROOT: &str = "/sys/class/udc";

/// A created gadget (not yet bound). Removed by [`Gadget::remove`].
#[derive(Debug)]
pub(crate) struct Gadget {
    pub(crate) dir: PathBuf,
    pub(crate) udc: String,
    pub(crate) pid_file: PathBuf,
    /// (instance name, mount point), in function order.
    pub(crate) instances: Vec<(String, PathBuf)>,
    removed: bool,
}

/// The name every usbfn gadget for `udc` gets.
pub(crate) fn gadget_name(udc: &str) -> String {
    format!("usbfn-{}", sanitize(udc))
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The UDCs of this machine: (name, state, current speed).
pub fn list_udcs() -> io::Result<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(UDC_ROOT) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let read = |attr: &str| {
            fs::read_to_string(e.path().join(attr))
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "?".into())
        };
        out.push((name, read("state"), read("current_speed")));
    }
    out.sort();
    Ok(out)
}

/// The gadget bound to `udc`, if any (by reading every gadget's `UDC` attribute).
pub fn udc_holder(udc: &str) -> Option<String> {
    let entries = fs::read_dir(GADGET_ROOT).ok()?;
    for e in entries.flatten() {
        if let Ok(bound) = fs::read_to_string(e.path().join("UDC"))
            && bound.trim() == udc
        {
            return Some(format!("gadget {}", e.path().display()));
        }
    }
    None
}

/// The speed the UDC runs at now (`current_speed`).
pub(crate) fn current_speed(udc: &str) -> BusSpeed {
    let text =
        fs::read_to_string(Path::new(UDC_ROOT).join(udc).join("current_speed")).unwrap_or_default();
    match text.trim() {
        "low-speed" | "full-speed" => BusSpeed::Full,
        "super-speed" | "super-speed-plus" => BusSpeed::Super,
        _ => BusSpeed::High,
    }
}

fn write_attr(path: &Path, value: &str) -> Result<(), FfsError> {
    fs::write(path, value).map_err(|e| FfsError::io("writing", path, e))
}

fn mkdir(path: &Path) -> Result<(), FfsError> {
    fs::create_dir(path).map_err(|e| FfsError::io("creating", path, e))
}

impl Gadget {
    /// Check the machine, remove a stale usbfn gadget for `udc`, and create the gadget with
    /// `functions` FunctionFS instances, each mounted. On error nothing is left behind.
    pub(crate) fn create(
        model: &DeviceModel,
        udc: &str,
        functions: usize,
        mount_root: &Path,
    ) -> Result<Gadget, FfsError> {
        let root = Path::new(GADGET_ROOT);
        if !root.is_dir() {
            return Err(FfsError::NoConfigfs { path: root.into() });
        }
        if !Path::new(UDC_ROOT).join(udc).exists() {
            let available = list_udcs()
                .unwrap_or_default()
                .into_iter()
                .map(|(n, _, _)| n)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(FfsError::NoSuchUdc {
                udc: udc.into(),
                available: if available.is_empty() {
                    "none".into()
                } else {
                    available
                },
            });
        }
        // (FunctionFS registers its file system when its first function is made, so its
        // absence shows as a failing mkdir of functions/ffs.*, reported below.)
        let name = gadget_name(udc);
        let dir = root.join(&name);
        fs::create_dir_all(mount_root).map_err(|e| FfsError::io("creating", mount_root, e))?;
        let pid_file = mount_root.join(format!("{name}.pid"));
        if dir.exists() {
            let owner = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            match owner {
                Some(pid) if pid != std::process::id().cast_signed() && sys::process_alive(pid) => {
                    return Err(FfsError::UdcBusy {
                        udc: udc.into(),
                        holder: format!("usbfn (pid {pid}, gadget {})", dir.display()),
                    });
                }
                _ => {
                    tracing::warn!(gadget = %dir.display(), "removing the gadget a previous usbfn run left behind");
                    remove_tree(&dir)?;
                }
            }
        }
        if let Some(holder) = udc_holder(udc) {
            return Err(FfsError::UdcBusy {
                udc: udc.into(),
                holder,
            });
        }
        fs::write(&pid_file, format!("{}\n", std::process::id()))
            .map_err(|e| FfsError::io("writing", &pid_file, e))?;
        mkdir(&dir)?;
        let mut gadget = Gadget {
            dir,
            udc: udc.into(),
            pid_file,
            instances: Vec::new(),
            removed: false,
        };
        match gadget.populate(model, functions, mount_root, &name) {
            Ok(()) => Ok(gadget),
            Err(e) => {
                if let Err(cleanup) = gadget.remove() {
                    tracing::warn!(error = %cleanup, "cleaning up the half-made gadget");
                }
                Err(e)
            }
        }
    }

    fn populate(
        &mut self,
        model: &DeviceModel,
        functions: usize,
        mount_root: &Path,
        name: &str,
    ) -> Result<(), FfsError> {
        let d = model.device();
        let g = self.dir.clone();
        write_attr(&g.join("idVendor"), &format!("0x{:04x}", d.vendor_id))?;
        write_attr(&g.join("idProduct"), &format!("0x{:04x}", d.product_id))?;
        write_attr(&g.join("bcdDevice"), &format!("0x{:04x}", d.bcd_device))?;
        write_attr(
            &g.join("bcdUSB"),
            &format!("0x{:04x}", model.bcd_usb(BusSpeed::High)),
        )?;
        write_attr(&g.join("bDeviceClass"), &format!("0x{:02x}", d.class))?;
        write_attr(&g.join("bDeviceSubClass"), &format!("0x{:02x}", d.subclass))?;
        write_attr(&g.join("bDeviceProtocol"), &format!("0x{:02x}", d.protocol))?;
        write_attr(
            &g.join("bMaxPacketSize0"),
            &model.max_packet0_field(BusSpeed::High).to_string(),
        )?;
        let lang = g.join("strings").join(format!("0x{:x}", d.language_id));
        mkdir(&lang)?;
        for (file, text) in [
            ("manufacturer", &d.manufacturer),
            ("product", &d.product),
            ("serialnumber", &d.serial),
        ] {
            if let Some(text) = text {
                write_attr(&lang.join(file), text)?;
            }
        }
        if model.configurations().len() != 1 {
            return Err(FfsError::Unsupported(format!(
                "{} configurations; the FunctionFS backend serves devices with one",
                model.configurations().len()
            )));
        }
        let config = &model.configurations()[0];
        let c = g.join("configs").join(format!("c.{}", config.value));
        mkdir(&c)?;
        write_attr(&c.join("MaxPower"), &d.max_power_ma.to_string())?;
        let mut attributes = 0x80u8;
        if d.self_powered {
            attributes |= 0x40;
        }
        if d.remote_wakeup {
            attributes |= 0x20;
        }
        write_attr(&c.join("bmAttributes"), &format!("0x{attributes:02x}"))?;
        if let Some(text) = model.strings().get(&config.i_configuration) {
            let cl = c.join("strings").join(format!("0x{:x}", d.language_id));
            mkdir(&cl)?;
            write_attr(&cl.join("configuration"), text)?;
        }
        for i in 0..functions {
            let instance = format!("{name}_f{i}");
            let f = g.join("functions").join(format!("ffs.{instance}"));
            match fs::create_dir(&f) {
                Ok(()) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV)) => {
                    return Err(FfsError::NoFunctionfs {
                        detail: format!("creating {} failed: {e}", f.display()),
                    });
                }
                Err(e) => return Err(FfsError::io("creating", &f, e)),
            }
            let mount = mount_root.join(&instance);
            self.instances.push((instance.clone(), mount.clone()));
            std::os::unix::fs::symlink(&f, c.join(format!("ffs.{instance}")))
                .map_err(|e| FfsError::io("linking", &f, e))?;
            match fs::create_dir(&mount) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(FfsError::io("creating", &mount, e)),
            }
            sys::mount_functionfs(&instance, &mount).map_err(|e| match e.raw_os_error() {
                Some(libc::ENODEV) => FfsError::NoFunctionfs {
                    detail: format!("mount -t functionfs {instance}: {e}"),
                },
                _ => FfsError::io("mounting functionfs at", &mount, e),
            })?;
        }
        Ok(())
    }

    /// Bind to the UDC (the host sees the device).
    pub(crate) fn bind(&self) -> Result<(), FfsError> {
        let path = self.dir.join("UDC");
        fs::write(&path, &self.udc).map_err(|e| match e.raw_os_error() {
            Some(libc::EBUSY) => FfsError::UdcBusy {
                udc: self.udc.clone(),
                holder: udc_holder(&self.udc).unwrap_or_else(|| "another gadget driver".into()),
            },
            _ => FfsError::io("binding to the UDC through", &path, e),
        })
    }

    /// Unbind from the UDC (the host sees a disconnect). Idempotent.
    pub(crate) fn unbind(&self) {
        unbind_dir(&self.dir);
    }

    /// Unbind, unmount and remove everything. Idempotent.
    pub(crate) fn remove(&mut self) -> Result<(), FfsError> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        let result = remove_tree(&self.dir);
        for (_, mount) in &self.instances {
            let _ = fs::remove_dir(mount);
        }
        let _ = fs::remove_file(&self.pid_file);
        result
    }
}

impl Drop for Gadget {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!(error = %e, "removing the gadget");
        }
    }
}

fn unbind_dir(dir: &Path) {
    let udc = dir.join("UDC");
    if fs::read_to_string(&udc).is_ok_and(|s| !s.trim().is_empty())
        && let Err(e) = fs::write(&udc, "\n")
    {
        tracing::warn!(path = %udc.display(), error = %e, "unbinding");
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Tear down a gadget directory made by usbfn (this run's or a crashed one's): unbind,
/// unlink the functions from the configurations, unmount their FunctionFS instances,
/// remove the directories. configfs only lets directories go in this order.
fn remove_tree(dir: &Path) -> Result<(), FfsError> {
    if !dir.exists() {
        return Ok(());
    }
    unbind_dir(dir);
    for config in subdirs(&dir.join("configs")) {
        for entry in subdirs(&config) {
            if entry.is_symlink() {
                let _ = fs::remove_file(&entry);
            }
        }
        for lang in subdirs(&config.join("strings")) {
            let _ = fs::remove_dir(&lang);
        }
        let _ = fs::remove_dir(&config);
    }
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    for function in subdirs(&dir.join("functions")) {
        let Some(name) = function.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(instance) = name.strip_prefix("ffs.") {
            for line in mounts.lines() {
                let mut fields = line.split_whitespace();
                if let (Some(source), Some(target), Some("functionfs")) =
                    (fields.next(), fields.next(), fields.next())
                    && source == instance
                    && let Err(e) = sys::umount(Path::new(target))
                {
                    tracing::warn!(target, error = %e, "unmounting functionfs");
                }
            }
        }
        if let Err(e) = fs::remove_dir(&function) {
            tracing::warn!(path = %function.display(), error = %e, "removing the function");
        }
    }
    for lang in subdirs(&dir.join("strings")) {
        let _ = fs::remove_dir(&lang);
    }
    fs::remove_dir(dir).map_err(|e| FfsError::io("removing the gadget", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gadget_names_are_safe_directory_names() {
        assert_eq!(gadget_name("dummy_udc.0"), "usbfn-dummy_udc_0");
        assert_eq!(gadget_name("fe980000.usb"), "usbfn-fe980000_usb");
        assert_eq!(gadget_name("../x"), "usbfn-___x");
    }
}
