//! Writes the man page and the shell completions from the command line's
//! own definition, for the packages: `cargo run --example gen-docs -- DIR`
//! puts `ssm-preflight.1` and `completions/{ssm-preflight.bash,_ssm-preflight,ssm-preflight.fish}` in DIR.

use clap::CommandFactory;
use clap_complete::Shell;
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/docs".into()),
    );
    std::fs::create_dir_all(dir.join("completions"))?;
    let cmd = ssm_preflight::commands::cli::Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(dir.join("ssm-preflight.1"), page)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(
            shell,
            &mut cmd.clone(),
            "ssm-preflight",
            dir.join("completions"),
        )?;
    }
    println!("{}", dir.display());
    Ok(())
}
