"""Report the software a job really runs with (lab L1.5).

    python env_check.py numpy pandas scikit-learn

Prints the Python version and the installed version of every distribution named on the
command line ("not installed" when it is missing), and writes the same facts to
outputs/env_report.json, which Azure ML keeps with the job's artifacts. It imports none
of the packages it reports on, so it also runs where some of them are missing.
"""
import json
import platform
import sys
from importlib import metadata
from pathlib import Path


def installed_version(distribution):
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def main(distributions):
    report = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "packages": {name: installed_version(name) for name in distributions},
    }
    print(f"python {report['python']} ({report['executable']})")
    for name, version in report["packages"].items():
        print(f"{name} {version or 'not installed'}")
    outputs = Path("outputs")
    outputs.mkdir(exist_ok=True)
    (outputs / "env_report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
