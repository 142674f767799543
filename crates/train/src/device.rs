//! The device an experiment computes on, as written in a config or on a command line.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `cpu`, `cuda` (GPU 0) or `cuda:N`. The fused CPU kernels run on the CPU; on a GPU the
/// soft-argmax has its own CUDA kernel (the `cuda` feature) and every other op is candle's
/// (convolutions included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceChoice {
    /// The CPU.
    #[default]
    Cpu,
    /// The NVIDIA GPU of this ordinal.
    Cuda(usize),
}

impl DeviceChoice {
    /// Opens the device: an error names the device and why (a build without the `cuda`
    /// feature, no such GPU, no driver).
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(n) => Device::new_cuda(n).map_err(|e| Error::InvalidSetting {
                field: "device".into(),
                reason: format!("cannot open {self}: {e}"),
            }),
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidSetting {
            field: "device".into(),
            reason: format!("`{s}`: expected `cpu`, `cuda` or `cuda:N` (N a GPU's number)"),
        };
        match s.trim() {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            t => {
                let n = t.strip_prefix("cuda:").ok_or_else(bad)?;
                n.parse::<usize>()
                    .map(DeviceChoice::Cuda)
                    .map_err(|_| bad())
            }
        }
    }
}

impl TryFrom<String> for DeviceChoice {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<DeviceChoice> for String {
    fn from(d: DeviceChoice) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (s, d) in [
            ("cpu", DeviceChoice::Cpu),
            ("cuda", DeviceChoice::Cuda(0)),
            ("cuda:3", DeviceChoice::Cuda(3)),
        ] {
            assert_eq!(s.parse::<DeviceChoice>().ok(), Some(d));
        }
        assert_eq!(DeviceChoice::Cuda(2).to_string(), "cuda:2");
        for bad in ["gpu", "cuda:", "cuda:-1", "cuda:x", ""] {
            let e = bad.parse::<DeviceChoice>().err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains("device")),
                "{bad}: {e:?}"
            );
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let e = DeviceChoice::Cuda(0).open().err().map(|e| e.to_string());
        assert!(e.as_deref().is_some_and(|e| e.contains("cuda:0")), "{e:?}");
    }
}
