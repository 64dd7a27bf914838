"""Write srgan3d/sr/weights/NOTICE from the shipped model cards (`srgan3d.sr.licences.notice_text`)."""

import json

from srgan3d.atomic import write_text_atomic
from srgan3d.sr.licences import notice_text
from srgan3d.sr.weights import PACKAGE_WEIGHTS

cards = {p.stem: json.loads(p.with_suffix(".json").read_text()) for p in sorted(PACKAGE_WEIGHTS.glob("*.pt"))}
write_text_atomic(PACKAGE_WEIGHTS / "NOTICE", notice_text(cards))
print(f"wrote {PACKAGE_WEIGHTS / 'NOTICE'} ({len(cards)} weights files)")
