"""The paper's studies (Fig. 2, Table 1, the authors' choices, Hopper beside
the authors' code): shell scripts that run the drivers, and their readers."""
