"""tedigan.convert"""
