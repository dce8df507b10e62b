"""Where results leave for people: the static HTML leaderboard rendered from run results."""
