//! The desktop app (eframe/egui).

pub fn run_native(_common: &crate::cli::Common) -> anyhow::Result<()> {
    anyhow::bail!("the desktop app is not built yet")
}
