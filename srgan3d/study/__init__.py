"""Response-study wing: cohort, radiomics, models, statistics, report, evaluation."""
