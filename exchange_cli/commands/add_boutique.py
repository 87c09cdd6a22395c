"""`exchange add-boutique`: a contributor's Boutiques descriptor into boutiques/<org>/<name>.json."""

from ..specs import SpecKind
from .adding import make_add_command

command = make_add_command(SpecKind.BOUTIQUE)
