"""PEP 508 marker values of the running interpreter (what `Requires-Dist` markers test).

The one definition: `takeout.deps` calls it in this interpreter, and `deps --static` sends this
file's source to the notebook kernel's interpreter, which may be another Python, so it stays
standard library only and valid on every Python 3 takeout supports.
"""

from __future__ import annotations

import os
import platform
import sys


def marker_values() -> dict[str, str]:
    """`implementation_name`, `python_version`, `sys_platform`, … of this interpreter."""
    impl = sys.implementation
    info = impl.version
    impl_version = f"{info.major}.{info.minor}.{info.micro}"
    if info.releaselevel != "final":
        impl_version += f"{info.releaselevel[0]}{info.serial}"
    return {
        "implementation_name": impl.name,
        "implementation_version": impl_version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": "{}.{}".format(*sys.version_info[:2]),
        "sys_platform": sys.platform,
    }
