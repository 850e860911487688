#!/usr/bin/env python3
"""Writes a package's copyright file (machine-readable, DEP-5) from
cargo-about's JSON listings of the binaries it ships.

    copyright.py --package NAME --style debian|full OUT LISTING.json...

Each listing is `cargo about generate --format json --fail` for one shipped
crate; cargo-about has already refused any crate whose licence about.toml
does not accept. "debian" points to /usr/share/common-licenses for the
licences Debian keeps there (lintian wants that); "full" writes every text
out (the RPM's COPYING).
"""

import argparse
import json
import sys

PROJECT = "pam_mfa"
COPYRIGHT = "2026 The pam_mfa developers"
CONTACT = "The pam_mfa developers <pam-mfa@lists.example.org>"

# SPDX id -> the file in /usr/share/common-licenses (Debian 12).
COMMON_LICENSES = {
    "GPL-3.0-or-later": "GPL-3",
    "Apache-2.0": "Apache-2.0",
    "MPL-2.0": "MPL-2.0",
    "CC0-1.0": "CC0-1.0",
}

OUR_LICENSE_TEXT = """\
This program is free software: you can redistribute it and/or modify it
under the terms of the GNU General Public License as published by the Free
Software Foundation, either version 3 of the License, or (at your option)
any later version.

This program is distributed in the hope that it will be useful, but WITHOUT
ANY WARRANTY; without even the implied warranty of MERCHANTABILITY or
FITNESS FOR A PARTICULAR PURPOSE. See the GNU General Public License for
more details."""


def indented(text):
    """A DEP-5 continuation block: every line one space in, blank lines ' .'."""
    lines = text.replace("\t", "    ").rstrip().splitlines()
    return "\n".join(" " + line.rstrip() if line.strip() else " ." for line in lines)


def crates_and_texts(listings):
    """{(name, version): {"authors", "licenses"}} and {license id: text}."""
    crates = {}
    texts = {}
    for path in listings:
        with open(path, encoding="utf-8") as f:
            listing = json.load(f)
        for licence in listing["licenses"]:
            lid = licence["id"]
            texts.setdefault(lid, licence["text"])
            for use in licence["used_by"]:
                crate = use["crate"]
                key = (crate["name"], crate["version"])
                entry = crates.setdefault(key, {"authors": crate.get("authors") or [], "licenses": set()})
                entry["licenses"].add(lid)
    return crates, texts


def render(package, style, crates, texts):
    out = [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
        f"Upstream-Name: {PROJECT}",
        f"Upstream-Contact: {CONTACT}",
        "Comment:",
        indented(
            f"{package} is built from the {PROJECT} sources (Files: *) and links the\n"
            "Rust crates listed below (Files: rust/CRATE-VERSION/*), each under the\n"
            "licence cargo-about chose from its licence expression."
        ),
        "",
        "Files: *",
        f"Copyright: {COPYRIGHT}",
        "License: GPL-3.0-or-later",
        "",
    ]
    ours = {name for (name, _), c in crates.items() if "GPL-3.0-or-later" in c["licenses"]}
    used = {"GPL-3.0-or-later"}
    for (name, version), crate in sorted(crates.items()):
        if name in ours:
            continue
        ids = sorted(crate["licenses"])
        used.update(ids)
        authors = [a.replace("\n", " ") for a in crate["authors"]] or [f"the {name} authors"]
        out.append(f"Files: rust/{name}-{version}/*")
        out.append("Copyright: " + authors[0])
        out.extend("           " + a for a in authors[1:])
        out.append("License: " + " and ".join(ids))
        out.append("")
    for lid in sorted(used):
        out.append(f"License: {lid}")
        if lid == "GPL-3.0-or-later":
            out.append(indented(OUR_LICENSE_TEXT))
            out.append(" .")
        if style == "debian" and lid in COMMON_LICENSES:
            out.append(
                indented(
                    f"On Debian systems, the full text of this licence is in\n"
                    f"/usr/share/common-licenses/{COMMON_LICENSES[lid]}."
                )
            )
        elif lid in texts:
            out.append(indented(texts[lid]))
        else:
            sys.exit(f"copyright.py: no text for licence {lid}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", required=True)
    parser.add_argument("--style", choices=["debian", "full"], required=True)
    parser.add_argument("out")
    parser.add_argument("listings", nargs="+")
    args = parser.parse_args()
    crates, texts = crates_and_texts(args.listings)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(render(args.package, args.style, crates, texts))


if __name__ == "__main__":
    main()
