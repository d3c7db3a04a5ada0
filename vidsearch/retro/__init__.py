"""retro"""
