"""What the simulated AutoML writes for its best model: ``featurization`` builds the model's
featurization from standard scikit-learn parts (and is copied into the generated training
script), ``outputs`` writes the best child's ``outputs/`` folder as Azure's AutoML does."""
