"""venues/binance package."""
