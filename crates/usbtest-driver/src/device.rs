//! Finding the USB interfaces bound to the `usbtest` driver through sysfs.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

/// An interface bound to usbtest, with what is needed to reach it through usbfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct TestDevice {
    /// sysfs directory of the interface (`.../3-1:1.0`).
    pub(crate) interface_path: PathBuf,
    /// sysfs directory of the device (`.../3-1`).
    pub(crate) device_path: PathBuf,
    /// `bInterfaceNumber`, the `ifno` of `USBDEVFS_IOCTL`.
    pub(crate) interface: u8,
    pub(crate) busnum: u16,
    pub(crate) devnum: u16,
    #[serde(serialize_with = "hex4")]
    pub(crate) vendor: u16,
    #[serde(serialize_with = "hex4")]
    pub(crate) product: u16,
    /// Negotiated speed as sysfs reports it in Mbit/s (`"480"`, `"5000"`).
    pub(crate) speed: String,
}

/// Which usbtest-bound interface to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selector {
    /// The first one found.
    Any,
    /// By `idVendor:idProduct` (hex).
    VidPid(u16, u16),
    /// By sysfs path of the device or the interface.
    SysPath(PathBuf),
    /// By usbfs node `/dev/bus/usb/BBB/DDD`.
    DevNode { busnum: u16, devnum: u16 },
}

impl TestDevice {
    /// The usbfs node of the device.
    pub(crate) fn dev_node(&self) -> PathBuf {
        PathBuf::from(format!(
            "/dev/bus/usb/{:03}/{:03}",
            self.busnum, self.devnum
        ))
    }

    /// The speed by USB name (`"high"`), falling back to sysfs's number.
    pub(crate) fn speed_name(&self) -> &str {
        match self.speed.as_str() {
            "1.5" => "low",
            "12" => "full",
            "480" => "high",
            "5000" => "super",
            "10000" | "20000" => "super-plus",
            other => other,
        }
    }

    fn matches(&self, selector: &Selector) -> bool {
        match selector {
            Selector::Any => true,
            Selector::VidPid(vid, pid) => self.vendor == *vid && self.product == *pid,
            Selector::SysPath(path) => {
                let path = fs::canonicalize(path).unwrap_or_else(|_| path.clone());
                path == self.interface_path || path == self.device_path
            }
            Selector::DevNode { busnum, devnum } => {
                self.busnum == *busnum && self.devnum == *devnum
            }
        }
    }
}

impl fmt::Display for TestDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:04x} {} ({}, interface {}, {} speed)",
            self.vendor,
            self.product,
            self.dev_node().display(),
            self.device_path.display(),
            self.interface,
            self.speed_name()
        )
    }
}

impl FromStr for Selector {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        if let Some(rest) = s.strip_prefix("/dev/bus/usb/") {
            let (bus, dev) = rest
                .split_once('/')
                .context("expected /dev/bus/usb/BBB/DDD")?;
            return Ok(Self::DevNode {
                busnum: bus.parse().context("bus number in /dev/bus/usb/BBB/DDD")?,
                devnum: dev
                    .parse()
                    .context("device number in /dev/bus/usb/BBB/DDD")?,
            });
        }
        if s.starts_with('/') {
            return Ok(Self::SysPath(PathBuf::from(s)));
        }
        if let Some((vid, pid)) = s.split_once(':') {
            let vid = u16::from_str_radix(vid, 16).context("vendor id (hex) in VID:PID")?;
            let pid = u16::from_str_radix(pid, 16).context("product id (hex) in VID:PID")?;
            return Ok(Self::VidPid(vid, pid));
        }
        bail!("device selector {s:?}: expected VID:PID, a /sys path or /dev/bus/usb/BBB/DDD")
    }
}

/// Every interface currently bound to usbtest, sorted by sysfs path.
pub(crate) fn bound_devices(sysfs: &Path) -> io::Result<Vec<TestDevice>> {
    let driver_dir = sysfs.join("bus/usb/drivers/usbtest");
    let entries = match fs::read_dir(&driver_dir) {
        Ok(entries) => entries,
        // Driver not loaded (yet): no devices.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        // Interfaces are named like "3-1:1.0"; skip bind/unbind/module/new_id/...
        if !entry.file_name().to_string_lossy().contains(':') {
            continue;
        }
        // An interface can vanish between readdir and reading it (unplug): skip it.
        if let Ok(dev) = read_interface(&entry.path()) {
            found.push(dev);
        }
    }
    found.sort_by(|a, b| a.interface_path.cmp(&b.interface_path));
    Ok(found)
}

/// Finds the interface the selector names, polling for up to `wait` for it to appear.
pub(crate) fn find(
    sysfs: &Path,
    selector: &Selector,
    wait: Duration,
) -> anyhow::Result<TestDevice> {
    let deadline = Instant::now() + wait;
    loop {
        let all = bound_devices(sysfs).context("listing usbtest devices in sysfs")?;
        if let Some(dev) = all.iter().find(|d| d.matches(selector)) {
            return Ok(dev.clone());
        }
        if Instant::now() >= deadline {
            if all.is_empty() {
                bail!(
                    "no interface is bound to usbtest (is the module loaded, the device attached?)"
                );
            }
            let list: Vec<String> = all.iter().map(ToString::to_string).collect();
            bail!(
                "no usbtest interface matches {selector:?}; bound: {}",
                list.join("; ")
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn read_interface(link: &Path) -> anyhow::Result<TestDevice> {
    let interface_path = fs::canonicalize(link)?;
    let device_path = interface_path
        .parent()
        .context("interface has no parent")?
        .to_path_buf();
    let attr = |dir: &Path, name: &str| -> anyhow::Result<String> {
        let path = dir.join(name);
        let text = fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        Ok(text.trim().to_owned())
    };
    let hex_u16 = |dir: &Path, name: &str| -> anyhow::Result<u16> {
        Ok(u16::from_str_radix(&attr(dir, name)?, 16)?)
    };
    Ok(TestDevice {
        interface: u8::from_str_radix(&attr(&interface_path, "bInterfaceNumber")?, 16)?,
        busnum: attr(&device_path, "busnum")?.parse()?,
        devnum: attr(&device_path, "devnum")?.parse()?,
        vendor: hex_u16(&device_path, "idVendor")?,
        product: hex_u16(&device_path, "idProduct")?,
        speed: attr(&device_path, "speed")?,
        interface_path,
        device_path,
    })
}

fn hex4<S: serde::Serializer>(value: &u16, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{value:04x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake sysfs with one device 3-1 (0525:a4a0, high speed) whose interface 0 is bound.
    fn fake_sysfs(name: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("usbtest-driver-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let dev = root.join("devices/pci0000:00/usb3/3-1");
        let intf = dev.join("3-1:1.0");
        fs::create_dir_all(&intf).unwrap();
        for (file, text) in [
            ("busnum", "3\n"),
            ("devnum", "2\n"),
            ("idVendor", "0525\n"),
            ("idProduct", "a4a0\n"),
            ("speed", "480\n"),
        ] {
            fs::write(dev.join(file), text).unwrap();
        }
        fs::write(intf.join("bInterfaceNumber"), "00\n").unwrap();
        let driver = root.join("bus/usb/drivers/usbtest");
        fs::create_dir_all(&driver).unwrap();
        std::os::unix::fs::symlink(&intf, driver.join("3-1:1.0")).unwrap();
        fs::write(driver.join("bind"), "").unwrap();
        root
    }

    #[test]
    fn parses_selectors() {
        assert_eq!(
            "0525:a4a0".parse::<Selector>().unwrap(),
            Selector::VidPid(0x0525, 0xa4a0)
        );
        assert_eq!(
            "/dev/bus/usb/003/012".parse::<Selector>().unwrap(),
            Selector::DevNode {
                busnum: 3,
                devnum: 12
            }
        );
        assert_eq!(
            "/sys/bus/usb/devices/3-1".parse::<Selector>().unwrap(),
            Selector::SysPath(PathBuf::from("/sys/bus/usb/devices/3-1"))
        );
        assert!("nonsense".parse::<Selector>().is_err());
        assert!("zz:a4a0".parse::<Selector>().is_err());
    }

    #[test]
    fn finds_bound_interfaces() {
        let root = fake_sysfs("find");
        let dev = find(&root, &Selector::Any, Duration::ZERO).unwrap();
        assert_eq!((dev.busnum, dev.devnum, dev.interface), (3, 2, 0));
        assert_eq!(dev.dev_node(), PathBuf::from("/dev/bus/usb/003/002"));
        assert_eq!(dev.speed_name(), "high");
        assert!(find(&root, &Selector::VidPid(0x0525, 0xa4a0), Duration::ZERO).is_ok());
        assert!(find(&root, &Selector::VidPid(0x1234, 0xa4a0), Duration::ZERO).is_err());
        let by_node = Selector::DevNode {
            busnum: 3,
            devnum: 2,
        };
        assert!(find(&root, &by_node, Duration::ZERO).is_ok());
        let by_path = Selector::SysPath(root.join("devices/pci0000:00/usb3/3-1"));
        assert!(find(&root, &by_path, Duration::ZERO).is_ok());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn no_driver_means_no_devices() {
        let root = std::env::temp_dir().join("usbtest-driver-nonexistent-sysfs");
        assert!(bound_devices(&root).unwrap().is_empty());
    }
}
