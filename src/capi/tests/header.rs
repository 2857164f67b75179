//! The committed header is the one cbindgen makes from the sources, and it compiles as C89,
//! C99 (pedantic, warnings as errors) and C++.

use std::path::{Path, PathBuf};
use std::process::Command;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn header_path() -> PathBuf {
    crate_dir().join("include").join("quorumlm.h")
}

fn generate() -> Vec<u8> {
    let dir = crate_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen reads the crate");
    let mut out = Vec::new();
    bindings.write(&mut out);
    // C89 has neither `//` comments (cbindgen's on its C++ guards) nor a comma after an
    // enum's last value.
    String::from_utf8(out)
        .expect("cbindgen writes UTF-8")
        .replace("#endif  // __cplusplus", "#endif  /* __cplusplus */")
        .replace("#endif // __cplusplus", "#endif /* __cplusplus */")
        .replace("}  // extern \"C\"", "}  /* extern \"C\" */")
        .replace(",\n};", "\n};")
        .into_bytes()
}

/// `QLM_WRITE_HEADER=1` (what `make capi-header` sets) rewrites the header instead.
#[test]
fn header_is_current() {
    let generated = generate();
    if std::env::var_os("QLM_WRITE_HEADER").is_some() {
        std::fs::write(header_path(), &generated).expect("write the header");
        return;
    }
    let committed = std::fs::read(header_path()).unwrap_or_default();
    assert!(
        committed == generated,
        "src/capi/include/quorumlm.h differs from what cbindgen makes of the sources: \
         run `make capi-header` and commit it"
    );
}

fn compiles(compiler: &str, flags: &[&str], source: &Path) {
    let include = crate_dir().join("include");
    let output = Command::new(compiler)
        .args(flags)
        .arg("-I")
        .arg(&include)
        .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only"])
        .arg(source)
        .output()
        .unwrap_or_else(|e| panic!("{compiler} runs: {e}"));
    assert!(
        output.status.success(),
        "{compiler} {flags:?} refuses the header:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn header_compiles_as_c89_c99_and_cpp() {
    let dir = tempfile_dir();
    let c = dir.join("use.c");
    let use_it = "#include <quorumlm.h>\n\
        int main(void) {\n\
          struct qlm_checkout_info info; struct qlm_session_status status;\n\
          qlm_client *client = 0; qlm_session *session = 0; struct qlm_checkout *seat = 0;\n\
          (void)info; (void)status; (void)client; (void)session; (void)seat;\n\
          return qlm_version()[0] == 0 ? QLM_ERR_INTERNAL : QLM_OK;\n\
        }\n";
    std::fs::write(&c, use_it).expect("write");
    compiles("cc", &["-std=c89"], &c);
    compiles("cc", &["-std=c99"], &c);
    let cpp = dir.join("use.cpp");
    std::fs::write(&cpp, use_it).expect("write");
    compiles("c++", &["-std=c++11"], &cpp);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qlm-capi-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}
