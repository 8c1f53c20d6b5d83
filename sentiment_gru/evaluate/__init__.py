"""How good a model is: scores, intervals, calibration, the baselines, the reports and the model card."""
