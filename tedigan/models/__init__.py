"""tedigan.models"""
