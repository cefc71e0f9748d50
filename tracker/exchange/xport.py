"""A SAS XPORT version 5 writer (the SAS Transport format of SAS technical report TS-140, the
FDA's format for submitted datasets), streaming: the variables and their lengths are known
before the first row, then rows are written as they come, so a dataset of any size is written
in constant memory. (pyreadstat writes XPORT from a whole data frame in memory; its reader and
pandas' are the independent readers the tests hold this writer against.)

Names are at most 8 characters, labels 40, character values 200 bytes; numbers are 8-byte IBM
hexadecimal floating point, a missing number is ``.``.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

RECORD = 80
MISSING = b"." + b"\x00" * 7
LABEL_LENGTH = 40
VALUE_LENGTH = 200


class XportError(ValueError):
    pass


SAS_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,7}")


@dataclass(frozen=True)
class XportVariable:
    name: str
    label: str
    numeric: bool
    length: int  # bytes: 8 for a number, 1 to 200 for text


def ibm_float(value: float | None) -> bytes:
    """``value`` as an 8-byte IBM System/360 double: sign, a base-16 exponent biased by 64,
    and a 56-bit fraction. Every IEEE double in the IBM range fits exactly (53 bits shifted
    by at most 3); one below it is zero, one above it (over 7.2e75) is refused."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if value == 0:
        return b"\x00" * 8
    sign = 0x80 if value < 0 else 0
    fraction, exponent = math.frexp(abs(value))  # abs(value) = fraction * 2**exponent
    hex_exponent = (exponent + 3) // 4  # the smallest E with 16**E > abs(value)
    mantissa = int(fraction * 2 ** (56 - (4 * hex_exponent - exponent)))
    biased = hex_exponent + 64
    if biased < 0:  # below 16**-65: no IBM double is that small, it is written as zero
        return b"\x00" * 8
    if biased > 127:
        raise XportError(f"{value!r} is outside the range of an IBM double.")
    return bytes([sign | biased]) + mantissa.to_bytes(7, "big")


def _text(value: str, length: int) -> bytes:
    data = value.encode("utf-8")
    if len(data) > length:
        raise XportError(f"{value[:20]!r}... is longer than {length} bytes.")
    return data.ljust(length, b" ")


def _ascii(value: str, length: int) -> bytes:
    return value.encode("ascii", errors="replace")[:length].ljust(length, b" ")


def _header(kind: str, tail: str = "0" * 30) -> bytes:
    return _ascii(f"HEADER RECORD*******{kind:<8}HEADER RECORD!!!!!!!{tail}", RECORD)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%d%b%y:%H:%M:%S").upper()


class XportWriter:
    """One dataset (member) in one transport file: ``write_row`` for each row, then
    ``close``."""

    def __init__(
        self,
        handle: BinaryIO,
        name: str,
        label: str,
        variables: Sequence[XportVariable],
        created: datetime,
    ) -> None:
        if not SAS_NAME.fullmatch(name):
            raise XportError(f"Dataset name {name!r} is not a SAS name of 8 characters.")
        self.handle = handle
        self.variables = list(variables)
        self.written = 0
        for variable in self.variables:
            if not SAS_NAME.fullmatch(variable.name):
                raise XportError(
                    f"Variable name {variable.name!r} is not a SAS name (A-Z, 0-9, _; 8 at most)."
                )
            if len(variable.label) > LABEL_LENGTH:
                raise XportError(f"The label of {variable.name} is over 40 characters.")
            if variable.numeric and variable.length != 8:
                raise XportError(f"{variable.name} is numeric: its length is 8.")
            if not 1 <= variable.length <= VALUE_LENGTH:
                raise XportError(f"{variable.name}: a length of 1 to 200 bytes.")
        stamp = _stamp(created)
        self._emit(_header("LIBRARY"))
        self._emit(_ascii("SAS     SAS     SASLIB  9.4     tracker " + " " * 24 + stamp, RECORD))
        self._emit(_ascii(stamp, RECORD))
        self._emit(_header("MEMBER", "000000000000000001600000000140"))
        self._emit(_header("DSCRPTR"))
        self._emit(_ascii(f"SAS     {name:<8}SASDATA 9.4     tracker " + " " * 24 + stamp, RECORD))
        self._emit(_ascii(stamp + " " * 16 + f"{label[:40]:<40}" + " " * 8, RECORD))
        self._emit(_header("NAMESTR", f"000000{len(self.variables):04d}" + "0" * 20))
        namestrs = bytearray()
        position = 0
        for number, variable in enumerate(self.variables, start=1):
            namestrs += struct.pack(
                ">hhhh8s40s8shhh2s8shhl52s",
                1 if variable.numeric else 2,
                0,
                variable.length,
                number,
                _ascii(variable.name, 8),
                _ascii(variable.label, 40),
                b" " * 8,
                0,
                0,
                0,
                b"\x00\x00",
                b" " * 8,
                0,
                0,
                position,
                b"\x00" * 52,
            )
            position += variable.length
        self._emit(self._padded(bytes(namestrs)))
        self._emit(_header("OBS"))
        self.row_length = position
        self._pending = 0  # bytes of observations written, for the final padding

    def _emit(self, data: bytes) -> None:
        self.handle.write(data)

    @staticmethod
    def _padded(data: bytes, fill: bytes = b" ") -> bytes:
        remainder = len(data) % RECORD
        return data if remainder == 0 else data + fill * (RECORD - remainder)

    def write_row(self, values: Sequence[str | float | int | None]) -> None:
        record = bytearray()
        for variable, value in zip(self.variables, values, strict=True):
            if variable.numeric:
                record += ibm_float(None if value in (None, "") else float(value))
            else:
                record += _text("" if value is None else str(value), variable.length)
        self.handle.write(record)
        self._pending += len(record)
        self.written += 1

    def close(self) -> None:
        """Blank-fill the last 80-byte record."""
        remainder = self._pending % RECORD
        if remainder:
            self.handle.write(b" " * (RECORD - remainder))
