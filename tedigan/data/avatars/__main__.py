"""``python -m tedigan.data.avatars``: render a data set, previews or the attribute sheet."""

import sys

from tedigan.data.avatars.preview import main

if __name__ == "__main__":
    sys.exit(main())
