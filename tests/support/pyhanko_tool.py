"""pyHanko as an outside judge and an outside signer for the PAdES tests (tests/e2e/pades.rs).

  pyhanko_tool.py validate ROOT.pem FILE.pdf      one JSON line per signature, in file order
  pyhanko_tool.py sign KEY.pem CERT.pem IN.pdf OUT.pdf   adds a PAdES signature (B-B)

Uses pyHanko's library API (the command line is a separate package); scripts/test.sh installs
pyHanko and pyhanko-certvalidator.
"""
import json
import sys

from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext


def validate(root, path):
    vc = ValidationContext(trust_roots=[load_cert_from_pemder(root)])
    with open(path, "rb") as f:
        reader = PdfFileReader(f, strict=False)
        for sig in reader.embedded_signatures:
            status = validate_pdf_signature(sig, vc)
            ts = status.timestamp_validity
            print(json.dumps({
                "field": sig.field_name,
                "intact": status.intact,
                "valid": status.valid,
                "trusted": status.trusted,
                "bottom_line": status.bottom_line,
                "coverage": status.coverage.name if status.coverage else None,
                "modification_level": status.modification_level.name if status.modification_level else None,
                "timestamp": None if ts is None else {"intact": ts.intact, "valid": ts.valid, "trusted": ts.trusted},
            }))


def sign(key, cert, src, dst):
    signer = signers.SimpleSigner.load(key, cert)
    meta = signers.PdfSignatureMetadata(field_name="PyHanko", subfilter=fields.SigSeedSubFilter.PADES)
    with open(src, "rb") as inf:
        writer = IncrementalPdfFileWriter(inf, strict=False)
        with open(dst, "wb") as outf:
            signers.sign_pdf(writer, meta, signer=signer, output=outf)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "validate":
        validate(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "sign":
        sign(*sys.argv[2:])
    else:
        sys.exit(__doc__)
