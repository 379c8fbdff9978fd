"""Reports on the host: the replay report (CSVs, PNG plots, text summary) of :mod:`.replay`. The plots need the
optional extra ``tick2trade[report]`` (matplotlib), imported only when drawing."""

from .replay import (CARD_CLOCK_HZ, CSV_FILES, PLOT_FILES, ReplayData, ReportDependencyError, summary_text,
                     write_csvs, write_plots, write_report)

__all__ = ["ReplayData", "ReportDependencyError", "write_report", "write_csvs", "write_plots", "summary_text",
           "CARD_CLOCK_HZ", "CSV_FILES", "PLOT_FILES"]
