//! Folders replaced whole, and folders fewstep did not write left alone.

use std::path::{Path, PathBuf};

use teacher::staged::{MANIFEST, StagedFolder};

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fewstep-staged-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_replaced_folder_keeps_the_users_files_and_drops_stale_outputs() {
    let root = temp("swap");
    let dest = root.join("report");
    // A report folder written before manifests, with the user's README beside it.
    std::fs::create_dir_all(&dest).unwrap();
    for f in [
        "results.json",
        "report.md",
        "grid-teacher-025.png",
        "README.md",
    ] {
        std::fs::write(dest.join(f), f).unwrap();
    }
    let staged = StagedFolder::begin(&dest, "results.json").unwrap();
    for f in ["results.json", "report.md", "grid-teacher-050.png"] {
        std::fs::write(staged.path().join(f), "new").unwrap();
    }
    // Until the commit the old folder is whole.
    assert!(dest.join("grid-teacher-025.png").exists());
    staged.commit().unwrap();
    assert_eq!(
        names(&dest),
        [
            MANIFEST,
            "README.md",
            "grid-teacher-050.png",
            "report.md",
            "results.json"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("README.md")).unwrap(),
        "README.md"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("report.md")).unwrap(),
        "new"
    );
    // Next time the manifest says what fewstep wrote: a file the user added is kept too.
    std::fs::write(dest.join("notes.txt"), "mine").unwrap();
    let staged = StagedFolder::begin(&dest, "results.json").unwrap();
    std::fs::write(staged.path().join("results.json"), "newer").unwrap();
    staged.commit().unwrap();
    assert_eq!(
        names(&dest),
        [MANIFEST, "README.md", "notes.txt", "results.json"]
    );
    // Only the destination is left in the parent (the lock file aside).
    let left: Vec<String> = names(&root)
        .into_iter()
        .filter(|n| !n.ends_with(".fewstep.lock"))
        .collect();
    assert_eq!(left, ["report"]);
}

#[test]
fn an_abandoned_write_leaves_the_old_folder_and_a_second_writer_is_refused() {
    let root = temp("abandon");
    let dest = root.join("samples");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("samples.json"), "{}").unwrap();
    let staged = StagedFolder::begin(&dest, "samples.json").unwrap();
    std::fs::write(staged.path().join("00000_c0.png"), "half").unwrap();
    let e = StagedFolder::begin(&dest, "samples.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("PID {}", std::process::id())), "{e}");
    drop(staged);
    assert_eq!(names(&dest), ["samples.json"]);
    assert_eq!(
        names(&root).iter().filter(|n| n.contains(".tmp-")).count(),
        0
    );
}

#[test]
fn folders_fewstep_did_not_write_are_refused_untouched() {
    let root = temp("foreign");
    let dest = root.join("photos");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("holiday.png"), "precious").unwrap();
    let e = StagedFolder::begin(&dest, "samples.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("did not write") && e.contains("holiday.png"),
        "{e}"
    );
    let e = teacher::lock::FolderLock::acquire(&dest, &["checkpoint.fsk"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("did not write"), "{e}");
    assert_eq!(names(&dest), ["holiday.png"]);
}

#[test]
fn an_unwritable_destination_is_named() {
    // /proc refuses new folders even to root, like a read-only disk (before: `eval report` there
    // failed naming no path).
    let dest = Path::new("/proc/fewstep-cannot-write-here/report");
    if !Path::new("/proc").is_dir() {
        eprintln!("skipped: no /proc on this system");
        return;
    }
    let e = StagedFolder::begin(dest, "results.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("/proc/fewstep-cannot-write-here"), "{e}");
}
