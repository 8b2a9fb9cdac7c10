"""The core without a broker: replay, backtest on warehouse exports, the simulator and the scorecard."""
