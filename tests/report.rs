//! `aelab report --quick` end to end on generated data: every section,
//! table and figure exists, and the numbers in metrics.json are the ones
//! REPORT.md prints.

use std::process::Command;

use aelab::data::{self, DatasetKind};

#[test]
fn quick_report_writes_every_section_figure_and_consistent_numbers() {
    let data_dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    data::write_synthetic(data_dir.path(), DatasetKind::Mnist, 1500, 300, 11).unwrap();
    data::write_synthetic(data_dir.path(), DatasetKind::FashionMnist, 300, 200, 12).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_aelab"))
        .args(["report", "--quick", "--out"])
        .arg(out.path())
        .arg("--data-dir")
        .arg(data_dir.path())
        .arg("--models-dir")
        .arg(models.path())
        .status()
        .unwrap();
    assert!(status.success());
    let md = std::fs::read_to_string(out.path().join("REPORT.md")).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("metrics.json")).unwrap()).unwrap();
    for section in [
        "## Q1.",
        "## Q2.",
        "## Q3.",
        "## Q4.",
        "## Q5.",
        "## Q6.",
        "## Summary",
    ] {
        assert!(md.contains(section), "missing {section}");
    }
    assert!(md.contains("**Take-away:**"));
    // figures: listed, written, valid PNGs, referenced by the report
    let figures = json["figures"].as_array().unwrap();
    assert!(figures.len() >= 16, "{} figures", figures.len());
    for f in figures {
        let name = f.as_str().unwrap();
        let bytes = std::fs::read(out.path().join(name)).unwrap();
        let img = image::load_from_memory(&bytes).unwrap();
        assert!(img.width() > 100 && img.height() > 50, "{name}");
        assert!(
            md.contains(&format!("]({name})")),
            "{name} not in REPORT.md"
        );
    }
    // every model of the study, and its summary-table row matches metrics.json
    let models_json = json["models"].as_array().unwrap();
    assert_eq!(models_json.len(), 17);
    for m in models_json {
        let preset = m["preset"].as_str().unwrap();
        let summary = &md[md.find("## Summary").unwrap()..];
        let row = summary
            .lines()
            .find(|l| l.starts_with(&format!("| {preset} | ")) && l.matches('|').count() == 13)
            .unwrap_or_else(|| panic!("no summary row for {preset}"));
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(|c| c.trim()).collect();
        assert_eq!(cells[1], m["params"].as_u64().unwrap().to_string());
        assert_eq!(cells[3], "1", "one epoch in quick mode");
        let test = &m["test"];
        assert_eq!(
            cells[6],
            format!("{:.5}", test["mse_per_pixel"].as_f64().unwrap()),
            "{preset} test MSE"
        );
        assert_eq!(
            cells[7],
            format!("{:.2}", test["psnr"].as_f64().unwrap()),
            "{preset} PSNR"
        );
        assert_eq!(
            cells[8],
            format!("{:.4}", test["ssim"].as_f64().unwrap()),
            "{preset} SSIM"
        );
        let probe = test["probe_accuracy"].as_f64().unwrap();
        assert_eq!(cells[9], format!("{:.1}%", probe * 100.0));
        assert!(test["mse_per_pixel"].as_f64().unwrap() < 0.2);
    }
    // the PCA row and the OOD / sparse / denoise / conv parts
    let pca_mse = json["pca"]["test"]["mse_per_pixel"].as_f64().unwrap();
    assert!(md.contains(&format!(
        "| PCA-30 | 24304 | 30 | – | – | – | {pca_mse:.5} |"
    )));
    let ood = json["ood"].as_array().unwrap();
    assert_eq!(ood.len(), 4, "three shallow models and deep");
    for o in ood {
        let a = o["auroc_other"].as_f64().expect("Fashion-MNIST was there");
        assert!((0.0..=1.0).contains(&a));
    }
    assert_eq!(json["sparse"].as_array().unwrap().len(), 4);
    assert_eq!(json["denoise_curves"].as_object().unwrap().len(), 7);
    // Q4's grids: every noise type, the five denoisers by training level
    for kind in ["gaussian", "masking", "salt-pepper"] {
        let g = &json["denoise_grid"][kind];
        let mse = g["mse"].as_array().unwrap();
        assert_eq!(mse.len(), 5, "{kind}");
        assert!(mse.iter().all(|r| r.as_array().unwrap().len() == 11));
        assert_eq!(g["rows"][0][0], "denoise-0.3");
        assert!(md.contains(&format!("q4_grid_{kind}.png")), "{kind} figure");
    }
    let cw = &json["conv_winner"];
    assert!(cw["best_mse"].as_f64().unwrap() <= cw["runner_up_mse"].as_f64().unwrap());
    assert!(md.contains(&format!(
        "wins with a test MSE of {:.5}",
        cw["best_mse"].as_f64().unwrap()
    )));
    // quick mode keeps its models out of the library
    assert_eq!(
        std::fs::read_dir(models.path())
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    assert_eq!(
        std::fs::read_dir(out.path().join("models"))
            .unwrap()
            .count(),
        51,
        "17 checkpoints, their manifests and their training replays"
    );
}
