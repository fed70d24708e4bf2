"""The FTP relay's LIST parser (servers without MLSD): Unix ``ls -l`` and DOS forms."""

from __future__ import annotations

import calendar

from escale_relay_ftp.listing import Entry, parse_list_line

NOW = float(calendar.timegm((2026, 12, 5, 2, 30, 0, 0, 0, 0)))


def stamp(*parts: int) -> float:
    return float(calendar.timegm((*parts, 0, 0, 0, 0)[:9]))


def test_a_vsftpd_file_line_gives_name_size_and_time_of_this_year() -> None:
    line = "-rw-r--r--    1 999      995          1234 Dec 05 02:18 escale.json"
    assert parse_list_line(line, NOW) == Entry(
        "escale.json", False, 1234, stamp(2026, 12, 5, 2, 18, 0)
    )


def test_a_time_ahead_of_now_is_last_years() -> None:
    line = "-rw-r--r--    1 999      995             3 Dec 24 10:00 old"
    assert parse_list_line(line, NOW) == Entry("old", False, 3, stamp(2025, 12, 24, 10, 0, 0))


def test_a_year_instead_of_a_time_is_midnight_of_that_day() -> None:
    line = "-rw-r--r--    1 ftp      ftp      5000000000 Mar  1  2019 big"
    assert parse_list_line(line, NOW) == Entry(
        "big", False, 5_000_000_000, stamp(2019, 3, 1, 0, 0, 0)
    )


def test_a_folder_line_is_a_folder() -> None:
    line = "drwxr-xr-x    2 999      995          4096 Dec 05 02:18 data"
    entry = parse_list_line(line, NOW)
    assert entry is not None and entry.is_dir and entry.name == "data"


def test_names_keep_their_spaces_and_leading_dots() -> None:
    line = "-rw-------    1 escale-test escale-test   7 Jan  2 03:04 a  name with spaces "
    assert parse_list_line(line, NOW) == Entry(
        "a  name with spaces ", False, 7, stamp(2026, 1, 2, 3, 4, 0)
    )
    hidden = "-rw-------    1 999 995 9 Dec  5 01:00 .tmp-0123abc"
    assert parse_list_line(hidden, NOW) == Entry(
        ".tmp-0123abc", False, 9, stamp(2026, 12, 5, 1, 0, 0)
    )


def test_a_line_without_group_parses() -> None:
    line = "-rw-r--r-- 1 owner 42 Feb 28 2024 nogroup"
    assert parse_list_line(line, NOW) == Entry("nogroup", False, 42, stamp(2024, 2, 28, 0, 0, 0))


def test_symlinks_devices_dots_and_noise_are_skipped() -> None:
    for line in (
        "lrwxrwxrwx    1 0        0               9 Dec 05 02:18 link -> /etc/passwd",
        "crw-rw-rw-    1 0        0            1, 3 Dec 05 02:18 null",
        "drwxr-xr-x    2 999      995          4096 Dec 05 02:18 .",
        "drwxr-xr-x    3 999      0            4096 Dec 05 02:18 ..",
        "total 12",
        "",
        "-rw-r--r--    1 999      995             3 Xyz 05 02:18 badmonth",
        "-rw-r--r--    1 999      995             3 Dec 05 02:18 a/b",
    ):
        assert parse_list_line(line, NOW) is None, line


def test_dos_lines_give_files_and_folders_with_12_and_24_hour_times() -> None:
    assert parse_list_line("12-05-26  02:18PM                 1234 report 1.txt") == Entry(
        "report 1.txt", False, 1234, stamp(2026, 12, 5, 14, 18, 0)
    )
    assert parse_list_line("01-02-1999  12:05AM       <DIR>          Old Folder") == Entry(
        "Old Folder", True, 0, stamp(1999, 1, 2, 0, 5, 0)
    )
    assert parse_list_line("07-04-24  23:59                 5 late") == Entry(
        "late", False, 5, stamp(2024, 7, 4, 23, 59, 0)
    )


def test_an_impossible_date_keeps_the_file_without_a_time() -> None:
    """A file is never hidden for its date: only stale-temporary cleanup uses the time."""
    line = "-rw-r--r--    1 999      995             3 Dec 45 02:18 badday"
    assert parse_list_line(line, NOW) == Entry("badday", False, 3, None)


def test_a_line_ending_is_not_part_of_the_name() -> None:
    line = "-rw-r--r--    1 999      995             3 Dec 05 02:18 x\r\n"
    entry = parse_list_line(line, NOW)
    assert entry is not None and entry.name == "x"
