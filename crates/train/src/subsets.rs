//! The subsets a data set defines for reporting: 300W's common and challenging test images
//! (by the folder a sample's annotation comes from), WFLW's six attribute subsets (the
//! images whose flag is 1).

use std::collections::BTreeMap;
use std::path::Path;

use landmark_ssl_data::formats::wflw;
use landmark_ssl_data::Dataset;

use crate::config::DataKind;

/// Membership of each sample of `ds` in each subset its format defines, by subset name;
/// empty when the format defines none (or no sample falls in one).
pub fn subsets_of(ds: &Dataset, kind: DataKind) -> BTreeMap<String, Vec<bool>> {
    let mut out = BTreeMap::new();
    match kind {
        DataKind::Wflw => {
            for attr in wflw::ATTRIBUTES {
                let member: Vec<bool> = ds
                    .samples
                    .iter()
                    .map(|s| s.classes.get(attr) == Some(&1))
                    .collect();
                if member.iter().any(|&m| m) {
                    out.insert(attr.to_string(), member);
                }
            }
        }
        DataKind::Pts => {
            // 300W's test protocol: common = LFPW and HELEN test images, challenging = iBUG.
            let folder_has = |p: &Path, names: &[&str]| {
                p.components().any(|c| {
                    let c = c.as_os_str().to_string_lossy().to_lowercase();
                    names.iter().any(|n| c == *n)
                })
            };
            let (common, challenging): (Vec<bool>, Vec<bool>) = ds
                .samples
                .iter()
                .map(|s| {
                    let p = s.describe();
                    (
                        folder_has(&p, &["lfpw", "helen"]),
                        folder_has(&p, &["ibug"]),
                    )
                })
                .unzip();
            if common.iter().any(|&m| m) || challenging.iter().any(|&m| m) {
                out.insert("common".to_string(), common);
                out.insert("challenging".to_string(), challenging);
            }
        }
        _ => {}
    }
    out
}
